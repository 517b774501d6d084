"""Show a per-residue table as the model-resolution viewer's "Show residue table" does (in
Scipion's table window, on the X display in $DISPLAY) and print as JSON the window's title,
column headings and rows. Run by test_gui.py: ``gui_residue_table.py CSV``."""
import json
import sys
import tkinter as tk
from tkinter import ttk

import pyworkflow.gui.project  # noqa: F401  (Scipion's GUI set up as the project window sets it up)

from deepres_plugin.core.residues import residue_table
from deepres_plugin.viewers.report_views import TableWindowView

TITLE = "DeepRes per-residue resolution"


def main(csv_path: str) -> None:
    root = tk.Tk()                        # the project window's root: the table opens over it
    headers, rows = residue_table(csv_path)
    TableWindowView(headers, rows, TITLE, "a message").show()
    root.update()
    shown = {"windows": []}
    for window in root.winfo_children():
        if isinstance(window, tk.Toplevel):
            trees = [child for child in window.winfo_children() if isinstance(child, ttk.Treeview)]
            shown["windows"].append({
                "title": window.title(),
                "headings": [tree.heading(column)["text"] for tree in trees for column in tree["columns"]],
                "rows": [[str(value) for value in tree.item(item)["values"]] for tree in trees
                         for item in tree.get_children()]})
    root.destroy()
    print(json.dumps(shown))


if __name__ == "__main__":
    main(sys.argv[1])
