"""The disposal lifecycle: recompute due dates, evaluate, review, holds (DESIGN.md section 4)."""
