"""The course's figures and widgets: pure functions that take measurements and return a
matplotlib Figure, and the ipywidgets explorers built on them. They import the core and the
toy world, never the lab: a figure draws what it is given."""
