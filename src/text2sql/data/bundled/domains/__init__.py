"""The bundled domains: each is a schema, a seeded row generator and its question templates."""

from text2sql.data.bundled.domains import airline, clinic, retail, university
from text2sql.data.bundled.domains.base import Domain

# Sorted by db_id, the order in which databases are generated and their pairs numbered.
DOMAINS: tuple[Domain, ...] = (airline.DOMAIN, clinic.DOMAIN, retail.DOMAIN, university.DOMAIN)

__all__ = ["DOMAINS", "Domain"]
