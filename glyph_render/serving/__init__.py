"""Tools for running a Glyph server, apart from the library: the launch recipes
(``glyph-render serve``), the endpoint check (``glyph-render doctor``) and the serving benchmark
(``glyph-render bench serve``). They ask the endpoint only through the client's public API."""
