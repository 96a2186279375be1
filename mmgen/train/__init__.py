"""Training systems (LightningModules, DataModules) and the LightningCLI entry.

Models arrive here already built; nothing under modalities/, dit/ or diffusion/ imports Lightning.
"""
