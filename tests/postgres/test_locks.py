"""PostgreSQL: each application locks only its own table."""

from tests.locks import PerApplicationLocks


class TestLocks(PerApplicationLocks):
    __test__ = True
    blocked_lock_timeout = 0.2
    lock_timeout_message = "lock timeout"
