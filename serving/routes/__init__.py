"""One router per resource; each route parses, authorises, calls a service, presents."""
