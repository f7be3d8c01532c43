"""datagen: 3D-DST, from CAD models to a 3D-annotated image dataset.

Will hold: viewpoint samplers, the render stage and edge maps, domain randomisation, prompts,
ControlNet generation, the K-fold consistency filter, and a resumable sharded writer.
"""
