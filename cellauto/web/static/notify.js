// Notifications of new operator tasks: see docs/web.md, "Operator tasks and alarms".
