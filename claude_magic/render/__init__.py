"""Pure text and HTML from a turn state: Markdown, the incremental view, the footer, frame budgets."""
