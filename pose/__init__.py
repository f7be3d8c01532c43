"""pose: a category-level pose estimator learned from diffusion-generated views, without pose labels.

Will hold: generation of views at controlled relative viewpoints from one reference image (which
defines the canonical pose), and the training of a pose estimator on them.
"""
