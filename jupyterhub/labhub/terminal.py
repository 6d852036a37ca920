"""What the admin command prints of names it did not choose (user and server names, folder and
volume names, an archive's members): a user can put control characters there (`\x1b[2J` clears
the admin's screen, `\r` overwrites a line, U+202E turns text around), so they are shown escaped."""


def printable(text: str) -> str:
    """text with each character a terminal would not just show (and the backslash, so that an
    escape cannot be forged) written as Python writes it in a string: `\\x1b`, `\\r`, `\\u202e`."""
    return "".join(ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode() for ch in text)


def columns(rows: list[tuple[str, ...]]) -> list[str]:
    """The rows as lines of left-aligned columns, each cell printable."""
    rows = [tuple(map(printable, row)) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
