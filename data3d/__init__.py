"""data3d: one annotation record for real and synthetic data, and the loaders that produce it.

Will hold: the image/object annotation record (viewpoint, camera, bbox, CAD reference, occlusion)
with NPZ/JSON I/O; a torch Dataset with crop/rescale/flip that keep the camera consistent;
loaders for ImageNet3D, PASCAL3D+ (raw, NeMo-preprocessed, occluded) and ObjectNet3D; 3D asset
sources (ShapeNet, Objaverse, OFF CAD folders); and a procedural asset library.
"""
