"""Pure call-handling policy: facts and a clock in, a decision out.

Nothing here does I/O, awaits, logs or imports another numcfg package, so every rule
(working hours, digit matching, queue order, quotas, number rules) is proved by table
tests and can be reused by the config checker, the call engine and the API alike.
Each module defines the small frozen input types it needs instead of importing the
config schema (route.py reads config-shaped objects through Protocols, which the
schema's models satisfy), which keeps the import direction one way: others import
policy. route.py is SPEC section 4 as a state machine: the call engine executes the
steps it returns and reports each result back.
"""
