"""orbit4d: FreeOrbit4D, re-rendering a monocular video along a new camera path.

Will hold: static background and geometry-complete foreground reconstruction (the 4D proxy),
their alignment, scaffold rendering along a new trajectory, and the video-model stage.
"""
