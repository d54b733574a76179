"""User names that cannot pass for one another: moved to ``retentiond.usernames`` (review
group names are checked the same way, below the web layer); kept here for existing imports."""

from retentiond.usernames import (
    ALLOWED_WORDS,
    MAX_LENGTH,
    PUNCTUATION,
    UsernameError,
    check_username,
    username_key,
)

__all__ = ["ALLOWED_WORDS", "MAX_LENGTH", "PUNCTUATION", "UsernameError", "check_username",
           "username_key"]
