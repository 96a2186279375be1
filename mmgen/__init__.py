"""mmgen: joint generation of music, dance motion and video with one multimodal diffusion transformer.

Submodules are imported lazily so that `import mmgen` and `mmgen --help` stay fast.
"""

__version__ = "0.1.0"
