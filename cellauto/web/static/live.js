// The page's live updates (server-sent events): see docs/web.md, "The line overview".
