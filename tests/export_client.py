"""A client of an ``fseg export`` that knows nothing of this project: TensorFlow and NumPy only.

    python3 export_client.py EXPORT_DIR RESULTS.npz CASES.json

Run by tests/test_export.py in a fresh process (from a folder outside the repository). CASES.json:
``{"images": [[name, encoded_file, pixels_npy], ...], "batch": [name, ...]}``. For each image it runs
``serving_default`` on the file's bytes alone and ``detect_image`` on the pixels (.npy [H, W, 3] uint8),
then ``serving_default`` once on the batch; every output goes into RESULTS.npz as
``<signature>/<name>/<output key>`` (``batch/<output key>`` for the batch), with the modules this
process imported under ``modules``.
"""
import json
import sys

import numpy as np
import tensorflow as tf


def main(export_dir, results_path, cases_path):
    cases = json.loads(open(cases_path, encoding="utf-8").read())
    loaded = tf.saved_model.load(export_dir)
    serving, detect_image = loaded.signatures["serving_default"], loaded.signatures["detect_image"]
    results = {}
    encoded = {}
    for name, file_path, pixels_path in cases["images"]:
        encoded[name] = open(file_path, "rb").read()
        for key, value in serving(images=tf.constant([encoded[name]])).items():
            results[f"serving_default/{name}/{key}"] = value.numpy()
        pixels = np.load(pixels_path)
        for key, value in detect_image(image=tf.constant(pixels[None])).items():
            results[f"detect_image/{name}/{key}"] = value.numpy()
    batch = tf.constant([encoded[name] for name in cases["batch"]])
    for key, value in serving(images=batch).items():
        results[f"batch/{key}"] = value.numpy()
    results["class_names"] = np.array(open(loaded.class_names_file.asset_path.numpy(), encoding="utf-8")
                                      .read().splitlines())
    results["modules"] = np.array(sorted(sys.modules))
    np.savez(results_path, **results)


if __name__ == "__main__":
    main(*sys.argv[1:4])
