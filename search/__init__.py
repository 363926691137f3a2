"""Bit-width search: the space, the searchers (ask/tell), Deb's rule, the problem, the journalled run loop."""
