"""Pure call-handling policy: facts and a clock in, a decision out.

Nothing here does I/O, awaits, logs or imports another numcfg package, so every rule
(working hours, digit matching, queue order, quotas, number rules) is proved by table
tests and can be reused by the config checker, the call engine and the API alike.
Each module defines the small frozen input types it needs instead of reading the
config schema, which keeps the import direction one way: others import policy.
"""
