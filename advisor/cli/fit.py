"""Tables that fit the terminal: whole columns are dropped, least important first, instead of being
squeezed. An id is never broken across lines and no cell is cut to an ellipsis; only the one free-text
column (reasons) wraps, at spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

NEVER = 1000   # a column that is never dropped


@dataclass(frozen=True)
class Column:
    header: str
    justify: str = "left"
    keep: int = NEVER        # columns with the lowest `keep` are dropped first
    wraps: bool = False      # the free-text column: wraps at spaces and takes the width left
    min_width: int = 18      # the narrowest a wrapping column may become


def _table(columns: list[Column], title: str | None, narrowest: bool = False):
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True,
                  pad_edge=False)
    for col in columns:
        if col.wraps:   # measured at its narrowest when deciding what fits
            table.add_column(col.header, justify=col.justify, overflow="fold", min_width=col.min_width,
                             max_width=col.min_width if narrowest else None)
        else:
            table.add_column(col.header, justify=col.justify, no_wrap=True, overflow="fold")
    return table


def rendered_width(table) -> int:
    """The width rich gives the table when nothing limits it (the widest line)."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=10_000, color_system=None, highlight=False).print(table)
    return max((len(line.rstrip()) for line in buf.getvalue().splitlines()), default=0)


def fitted_table(columns: list[Column], rows: list[list[str]], width: int, *, title: str | None = None,
                 comfort: tuple[int, int] = (36, 50)):
    """(table, dropped headers): the rows with as many columns as `width` allows.

    `comfort` = (width, keep): columns kept less than `keep` are also dropped while the wrapping column
    would be narrower than `width` (long reasons in a 20-character column read badly); others only
    when the table cannot fit at all.
    """
    keep = list(range(len(columns)))

    def build(indices: list[int], wrap_min: int | None):
        chosen = [columns[i] if not (columns[i].wraps and wrap_min) else
                  Column(columns[i].header, columns[i].justify, columns[i].keep, True,
                         max(wrap_min, columns[i].min_width))
                  for i in indices]
        table = _table(chosen, None, narrowest=True)
        for row in rows:
            table.add_row(*[row[i] for i in indices])
        return table

    comfort_width, comfort_keep = comfort
    for wrap_min, limit in ((comfort_width, comfort_keep), (None, NEVER)):
        droppable = sorted((i for i in keep if columns[i].keep < limit), key=lambda i: columns[i].keep)
        while rendered_width(build(keep, wrap_min)) > width and droppable:
            keep.remove(droppable.pop(0))
    table = _table([columns[i] for i in keep], title)
    for row in rows:
        table.add_row(*[row[i] for i in keep])
    dropped = [columns[i].header for i in range(len(columns)) if i not in keep]
    return table, dropped
