"""Incoming calls on a number: the interpreter of policy.route and the steps it runs."""
