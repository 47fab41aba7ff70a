"""The errors of psexport.

Every error names the file it is about. ExportError carries the canonical
code the C++ reader (common/export_format.h, common/checksummed_file.h) gives
for the same problem, so callers can tell a corrupt file from a wrong one:

  DATA_LOSS            a truncated or corrupt file (bad footer, size or
                       checksum mismatch, a block that does not fit)
  FAILED_PRECONDITION  a newer format version; a DELTA applied to the wrong
                       base; a table or config that does not match
  INVALID_ARGUMENT     not an export file (other magic), not a regular file
  NOT_FOUND            a missing file or folder, a folder without a FULL
                       export
"""

DATA_LOSS = "DATA_LOSS"
FAILED_PRECONDITION = "FAILED_PRECONDITION"
INVALID_ARGUMENT = "INVALID_ARGUMENT"
NOT_FOUND = "NOT_FOUND"


class ExportError(Exception):
    """An export file or folder that cannot be read; str() names the file."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code

    def __str__(self):
        return "%s: %s" % (self.code, self.args[0])


class DataError(Exception):
    """A data line that does not parse: "file:line: reason", as ps_worker
    --predict reports it (it scores every line, so it cannot skip one)."""
