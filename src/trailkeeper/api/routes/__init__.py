"""The routes of CONTRACT section 4, one module per concern, each a router built for one
:class:`~trailkeeper.api.service.Service`."""
