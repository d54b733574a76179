"""Server-rendered pages (HTML, GOV.UK Frontend). Each works without JavaScript."""
