"""The ground floor of measuring: one record (``Measurement``) and one runner contract (``Runner``).

Every way of measuring a model — host runtimes (profiling/), boards (deploy/), the cost model (boards/) — is a
runner returning a :class:`Measurement`; everything above (pipeline/, cli) reads only this record."""
