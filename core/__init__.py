"""The ground floor of dajia: errors, settings, atomic files and the one database (metadata, engine,
unit of work). Every other package imports from here; this package imports none of ours."""
