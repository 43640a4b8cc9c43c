"""The ``fseg`` command-line tool. Each verb lives in its own ``cmd_*.py`` module.

Command modules import only ``click`` at the top level; heavy libraries
(TensorFlow, pycocotools, OpenCV) are imported inside the command functions so
that ``fseg --help`` and ``fseg convert`` start fast and never load TensorFlow.
Nothing in ``df2coco`` or ``mrcnn`` imports this package.
"""

__version__ = "0.1.0"
