"""Claims of the four papers checked against the workflow's tables, one module per paper."""
