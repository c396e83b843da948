"""The one exception type for mistakes a person can make and fix."""


class CareTrendsError(Exception):
    """A problem with the user's input (file, LA, date, parameter) rather than a bug.

    The message is one line that names the problem and the fix; the CLI prints it without a
    traceback and exits non-zero.
    """
