"""Board profiles: schema, loader, cost model (issue: board profiles)."""
