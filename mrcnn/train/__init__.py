"""Level 3: training. Layer groups, the loss table, the train step, callbacks, stages and schedules, checkpoints.

    MaskRCNN.train(...)            one stage            (stage.run_training)
    run_schedule(model, ...)       the config's TRAIN_SCHEDULE, optionally in a time budget (schedule)

May import everything below it: :mod:`mrcnn.ops`, :mod:`mrcnn.layers`, :mod:`mrcnn.modeling`,
:mod:`mrcnn.data`, :mod:`mrcnn.io`, the config and the registry. ``checkpoints`` is standard
library only (the CLI finds checkpoints without loading TensorFlow).
"""
