"""`logo COMMAND --help` that fits 80 columns.

Typer lays an options panel out in up to six columns (required mark, long names, short names, the
negative names of a flag pair, value type, help); at 80 columns the help column is a few characters
wide and rich cuts the option names (`--allow-incomple…`). Here each option takes two columns:

- its names, never cut: `-h, --help`, the negative name of a flag pair on the next line
  (`--resume` / `--no-resume`), a `*` before a required one;
- its value type (`<int>`, `<macql|cfcql|...>`; none for a flag), help and default, wrapped.

Typer's own renderers fill the cells (its highlighting, its `[default: ...]`), so only the layout
changes. If an installed Typer lacks the helpers this relies on, its own layout stays.
"""

from __future__ import annotations

_NEEDED = ("_print_options_panel", "_get_parameter_help", "highlighter", "negative_highlighter")


def install() -> bool:
    """Replaces Typer's options panel; False (nothing changed) where this Typer lacks its helpers."""
    import typer.rich_utils as ru

    if not all(hasattr(ru, name) for name in _NEEDED) or getattr(ru, "_logo_layout", False):
        return getattr(ru, "_logo_layout", False)
    original = ru._print_options_panel

    def print_options_panel(*, name, params, ctx, markup_mode, console) -> None:
        rows = [_row(ru, p, ctx, markup_mode) for p in params]
        if any(r is None for r in rows):  # something this layout does not know: Typer's own
            return original(name=name, params=params, ctx=ctx, markup_mode=markup_mode, console=console)
        if not rows:
            return None
        from rich.panel import Panel
        from rich.table import Table

        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1)
        for names, help_text in rows:
            table.add_row(names, help_text)
        console.print(
            Panel(table, border_style=ru.STYLE_OPTIONS_PANEL_BORDER, title=name,
                  title_align=ru.ALIGN_OPTIONS_PANEL)
        )  # fmt: skip
        return None

    ru._print_options_panel = print_options_panel
    ru._logo_layout = True
    return True


def _row(ru, param, ctx, markup_mode):
    """(names cell, help cell) of one parameter, or None when its help holds more than text."""
    from rich.text import Text

    required = "* " if param.required else ""
    if param.param_type_name == "argument":
        names = Text(required + (param.metavar or param.name.upper()))
        negatives: list[str] = []
    else:
        shorts = [o for o in param.opts if not o.startswith("--")]
        longs = [o for o in param.opts if o.startswith("--")]
        names = ru.highlighter(Text(required + ", ".join(shorts + longs)))
        negatives = list(param.secondary_opts)
    if negatives:
        names.append("\n")
        names.append_text(ru.negative_highlighter(Text(("  " if required else "") + ", ".join(negatives))))
    parts = list(ru._get_parameter_help(param=param, ctx=ctx, markup_mode=markup_mode).renderables)
    if not all(isinstance(p, Text) for p in parts):
        return None
    help_text = Text()
    shown = param.display_type_rich(ctx=ctx) if hasattr(param, "display_type_rich") else None
    if shown:
        help_text.append(str(shown) + " ", style=ru.STYLE_TYPES)
    for i, part in enumerate(parts):
        if i:
            help_text.append(" ")
        help_text.append_text(part)
    return names, help_text
