"""lockgate-postgres's tests: a package, so that its conftest and helpers never take the
names of lockgate's own (both run in one pytest session under make test)."""
