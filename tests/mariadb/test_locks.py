"""MariaDB: each application locks only its own row of the lock table."""

from tests.locks import PerApplicationLocks


class TestLocks(PerApplicationLocks):
    __test__ = True
    blocked_lock_timeout = 1  # MariaDB waits whole seconds
    lock_timeout_message = "Lock wait timeout"
