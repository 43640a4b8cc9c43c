"""DeepFashion2 -> COCO conversion, importable without TensorFlow.

Modules, from the bottom up: ``categories`` and ``problems`` (tables and names),
``report`` (problem records), ``imagesize`` (JPEG/PNG header sizes), ``reader``
(one annotation file -> typed records), ``geometry`` (clipping, union area),
``annotation`` (one item -> one COCO annotation), ``worker`` (one image -> JSON
records), ``listing`` (a folder's files by number, duplicates), ``pool``
(ordered results from worker processes), ``leftovers`` (temporary names that carry
the writer's process id; removing those of killed runs), ``writer`` (atomic, streaming output),
``convert`` (a whole split, in parallel), ``stats`` (summary of a COCO file);
``synthetic`` generates test data.

Entry point: ``df2coco.convert.convert_split``.
"""
