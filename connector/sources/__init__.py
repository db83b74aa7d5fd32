"""SQL sources: read users, accounts, account links, events and object records out of a warehouse by SELECTs,
incrementally (a cursor column, or a hash diff of the rows), and write them through the ingestion services."""
