"""Error types of the text domain.

Each says what is wrong and where (file, row, column), so that a person can fix the input
instead of reading a traceback.
"""

from __future__ import annotations


class TextError(ValueError):
    """Base class: bad input or a bad file given to the text domain."""


class TextInputError(TextError):
    """A text is empty, not a string, or longer than we accept."""


class DatasetError(TextError):
    """A labelled CSV cannot be used: unreadable, missing columns, empty labels, one class …"""


class ModelFileError(TextError):
    """A file is not a HazardLoop text model, or was written by an incompatible version."""


class RuleTableError(TextError):
    """A rule table (keywords, accident types, 重大隐患 items) is malformed; names file and row."""
