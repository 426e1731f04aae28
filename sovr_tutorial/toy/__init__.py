"""The 2-D toy world, the course's lab bench: six classes in the plane (``world``) and what a
model does there (``model``: train, measure, fine-tune with SOVR's switch), in seconds on a
CPU. It imports only the core."""
