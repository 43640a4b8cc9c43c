/*
 * df2coco._polygon_area: pixel area of the union of an item's polygons, rasterised exactly
 * as pycocotools does it (maskApi.c's rleFrPoly, then rleMerge with OR, then rleArea), but
 * without building the RLEs. An optional speed-up: df2coco.geometry.union_area falls back
 * to pycocotools itself when this module is not built, and tests keep the two equal.
 *
 * How pycocotools rasterises one polygon, restated as the rules this file follows:
 *   1. Vertices are scaled to a grid 5x finer than the pixels: X = (int)(5x + .5), same for Y.
 *   2. Every edge is walked one fine step at a time along its longer axis; the other
 *      coordinate is rounded with (int)(start + s*t + .5) ("u" = fine x, "v" = fine y).
 *   3. A "crossing" is a step whose u changes from m to m+1 (or back) with m = 5c + 2: the
 *      outline passes the centre line of pixel column c. Its row is
 *      ceil(clamp((min v of the step + .5) / 5 - .5, 0, h)).
 *   4. In each column, the pixels between the 1st and 2nd crossing (sorted by row), the 3rd
 *      and 4th, ... are inside: an even-odd fill. (The closed outline crosses each column's
 *      centre line an even number of times, so crossings pair up within a column.)
 * The item's mask is the union (OR) of its polygons' masks; its area is the number of pixels
 * in it. Only crossings are computed here: x-major edges step 5 fine units at a time from
 * one centre line to the next, and y-major edges solve for the step where u passes a centre
 * line and check it against the same float expression, so the work per polygon is about
 * the number of columns it spans, not 5x its perimeter.
 *
 * Build with -ffp-contract=off (setup.py): the float expressions of rule 2 must round like
 * pycocotools' separate multiply and add.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define SCALE 5
#define MAX_SIDE (1 << 24) /* width/height limit: 5 * side fits an int */

/* One crossing: pixel column, and (polygon index << 32 | row) as one sortable key. */
typedef struct {
    int32_t col;
    uint64_t key;
} Crossing;

static int scaled(double value) { return (int)(SCALE * value + .5); }

/*
 * Rule 3's row of a crossing whose step has smaller fine y `vmin` (>= 0); h = image height.
 * pycocotools computes ceil(clamp((vmin + .5) / 5 - .5, 0, h)) in floats; for an integer
 * vmin >= 0 that is min(floor((vmin + 2) / 5), h), exactly, in integers. (The min never binds
 * for vertices inside the image, vmin <= 5h; it is kept as pycocotools' clamp.)
 */
static int32_t crossing_row(int vmin, int64_t h) {
    int64_t row = ((int64_t)vmin + 2) / SCALE;
    return (int32_t)(row < h ? row : h);
}

/* Rule 2's rounded coordinate at step t of an edge starting at `start` with slope `s`. */
static int rounded(int start, double s, int t) { return (int)(start + s * t + .5); }

/* The first column centre line (fine x m = 5c + 2, rule 3) at or after fine x `lo`. */
static int first_centre_line(int lo) { return lo + ((2 - lo) % SCALE + SCALE) % SCALE; }

/*
 * Appends the crossings of the edge (x0, y0) -> (x1, y1) (fine units) to `out`; returns the
 * new count. `poly` tags the crossings with their polygon.
 */
static Py_ssize_t edge_crossings(int x0, int y0, int x1, int y1, uint64_t poly, int64_t h,
                                 Crossing *out, Py_ssize_t n) {
    int dx = abs(x1 - x0), dy = abs(y1 - y0);
    if (dx == 0) return n; /* u never changes: no crossing (this includes single points) */
    if (dx >= dy) {        /* x-major: u = xs + t, consecutive steps differ by exactly 1 */
        int xs = x0 < x1 ? x0 : x1, ys = x0 < x1 ? y0 : y1, ye = x0 < x1 ? y1 : y0;
        double s = (double)(ye - ys) / dx;
        for (int m = first_centre_line(xs); m <= xs + dx - 1; m += SCALE) { /* step t -> t + 1 */
            int t = m - xs, va = rounded(ys, s, t), vb = rounded(ys, s, t + 1);
            out[n].col = (m - 2) / SCALE;
            out[n].key = poly << 32 | (uint32_t)crossing_row(va < vb ? va : vb, h);
            n++;
        }
        return n;
    }
    /* y-major: v = ys + t, u = rounded(xs, s, t) is monotone and moves by at most 1 per step */
    int flip = y0 > y1;
    int xs = flip ? x1 : x0, ys = flip ? y1 : y0, xe = flip ? x0 : x1;
    double s = (double)(xe - xs) / dy;
    int u_end = rounded(xs, s, dy), rising = u_end > xs;
    int lo = rising ? xs : u_end, hi = rising ? u_end : xs;
    for (int m = first_centre_line(lo); m <= hi - 1; m += SCALE) {
        /* first step t in [1, dy] whose u has passed m, estimated then checked exactly */
        double guess = (m + .5 - xs) / s;
        int t = rising ? (int)ceil(guess) : (int)floor(guess) + 1;
        if (t < 1) t = 1;
        if (t > dy) t = dy;
#define PASSED(tt) (rising ? rounded(xs, s, (tt)) >= m + 1 : rounded(xs, s, (tt)) <= m)
        while (t > 1 && PASSED(t - 1)) t--;
        while (t < dy && !PASSED(t)) t++;
#undef PASSED
        out[n].col = (m - 2) / SCALE;
        out[n].key = poly << 32 | (uint32_t)crossing_row(ys + t - 1, h);
        n++;
    }
    return n;
}

/*
 * Sorts 64-bit keys: crossings (polygon << 32 | row) and intervals (start << 32 | end).
 * Columns hold a few (2 for a convex outline): insertion sort, or qsort past 32.
 */
static int compare_keys(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void sort_keys(uint64_t *keys, Py_ssize_t n) {
    if (n > 32) {
        qsort(keys, (size_t)n, sizeof(uint64_t), compare_keys);
        return;
    }
    for (Py_ssize_t i = 1; i < n; i++) {
        uint64_t k = keys[i];
        Py_ssize_t j = i - 1;
        for (; j >= 0 && keys[j] > k; j--) keys[j + 1] = keys[j];
        keys[j + 1] = k;
    }
}

/*
 * Pixels inside one column, given its crossing keys sorted by (polygon, row): each polygon's
 * rows pair up into intervals [start, end) (rule 4), and the intervals of all polygons are
 * united. `intervals` has room for n / 2.
 */
static int64_t column_area(const uint64_t *keys, Py_ssize_t n, uint64_t *intervals) {
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i + 1 < n; i += 2) /* rows < 2^32: start << 32 | end sorts by start */
        intervals[count++] = (keys[i] & 0xFFFFFFFFu) << 32 | (keys[i + 1] & 0xFFFFFFFFu);
    int several = n > 0 && (keys[0] >> 32) != (keys[n - 1] >> 32);
    if (several) sort_keys(intervals, count); /* one polygon's intervals are already in order */
    int64_t area = 0, reached = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t start = (int64_t)(intervals[i] >> 32), end = (int64_t)(intervals[i] & 0xFFFFFFFFu);
        if (start < reached) start = reached;
        if (end > start) area += end - start;
        if (end > reached) reached = end;
    }
    return area;
}

/* Reads one flat polygon into fine-grid vertices; -1 with an exception set if it is bad. */
static Py_ssize_t read_polygon(PyObject *polygon, int64_t w, int64_t h, int *xs, int *ys) {
    PyObject *fast = PySequence_Fast(polygon, "each polygon must be a sequence of numbers");
    if (fast == NULL) return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < len; i += 2) {
        double x = PyFloat_AsDouble(items[i]), y = PyFloat_AsDouble(items[i + 1]);
        if ((x == -1.0 || y == -1.0) && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        if (!(x >= 0 && x <= (double)w && y >= 0 && y <= (double)h)) { /* also rejects NaN */
            PyErr_SetString(PyExc_ValueError, "polygon vertex outside the image (clip polygons first)");
            Py_DECREF(fast);
            return -1;
        }
        xs[i / 2] = scaled(x);
        ys[i / 2] = scaled(y);
    }
    Py_DECREF(fast);
    return len / 2;
}

/* Index of the vertex after vertex i in the polygon of vertices [first, end): the last one closes. */
static Py_ssize_t next_vertex(Py_ssize_t i, Py_ssize_t first, Py_ssize_t end) { return i + 1 < end ? i + 1 : first; }

/* Polygon lengths are checked and summed first, so that one allocation holds everything. */
static Py_ssize_t count_vertices(PyObject *polygons_fast) {
    Py_ssize_t total = 0, num = PySequence_Fast_GET_SIZE(polygons_fast);
    if (num > (Py_ssize_t)0x7FFFFFFF) {
        PyErr_SetString(PyExc_ValueError, "too many polygons");
        return -1;
    }
    for (Py_ssize_t p = 0; p < num; p++) {
        Py_ssize_t len = PyObject_Length(PySequence_Fast_GET_ITEM(polygons_fast, p));
        if (len < 0) return -1;
        if (len < 6 || len % 2) {
            PyErr_SetString(PyExc_ValueError, "each polygon needs an even number (>= 6) of coordinates");
            return -1;
        }
        total += len / 2;
    }
    return total;
}

static PyObject *union_area(PyObject *self, PyObject *args) {
    PyObject *polygons;
    Py_ssize_t w, h;
    if (!PyArg_ParseTuple(args, "Onn:union_area", &polygons, &w, &h)) return NULL;
    if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE) {
        PyErr_SetString(PyExc_ValueError, "width and height must be in 1..16777216");
        return NULL;
    }
    PyObject *fast = PySequence_Fast(polygons, "polygons must be a sequence of polygons");
    if (fast == NULL) return NULL;
    Py_ssize_t num_polygons = PySequence_Fast_GET_SIZE(fast);
    Py_ssize_t num_vertices = count_vertices(fast);
    int *xs = NULL, *ys = NULL;
    Py_ssize_t *starts = NULL, *col_count = NULL;
    Crossing *crossings = NULL;
    uint64_t *by_column = NULL;
    uint64_t *intervals = NULL; /* one column's intervals */
    PyObject *result = NULL;
    if (num_vertices < 0) goto done;

    /* 1. vertices on the fine grid; starts[p] = index of polygon p's first vertex */
    xs = PyMem_Malloc(sizeof(int) * (num_vertices + 1));
    ys = PyMem_Malloc(sizeof(int) * (num_vertices + 1));
    starts = PyMem_Malloc(sizeof(Py_ssize_t) * (num_polygons + 1));
    if (!xs || !ys || !starts) { PyErr_NoMemory(); goto done; }
    starts[0] = 0;
    for (Py_ssize_t p = 0; p < num_polygons; p++) {
        Py_ssize_t n = read_polygon(PySequence_Fast_GET_ITEM(fast, p), w, h, xs + starts[p], ys + starts[p]);
        if (n < 0) goto done;
        starts[p + 1] = starts[p] + n;
    }

    /* 2. crossings of every edge (closing edge included); at most |dx| / 5 + 1 per edge (+1 spare) */
    Py_ssize_t bound = 0;
    for (Py_ssize_t p = 0; p < num_polygons; p++)
        for (Py_ssize_t i = starts[p]; i < starts[p + 1]; i++)
            bound += abs(xs[next_vertex(i, starts[p], starts[p + 1])] - xs[i]) / SCALE + 2;
    crossings = PyMem_Malloc(sizeof(Crossing) * (bound + 1));
    if (!crossings) { PyErr_NoMemory(); goto done; }
    Py_ssize_t n = 0;
    for (Py_ssize_t p = 0; p < num_polygons; p++)
        for (Py_ssize_t i = starts[p]; i < starts[p + 1]; i++) {
            Py_ssize_t next = next_vertex(i, starts[p], starts[p + 1]);
            n = edge_crossings(xs[i], ys[i], xs[next], ys[next], (uint64_t)p, h, crossings, n);
        }

    /* 3. counting sort by column, then each column's keys sorted and its area added */
    int32_t cmin = INT32_MAX, cmax = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (crossings[i].col < cmin) cmin = crossings[i].col;
        if (crossings[i].col > cmax) cmax = crossings[i].col;
    }
    int64_t area = 0;
    if (n > 0) {
        Py_ssize_t span = (Py_ssize_t)cmax - cmin + 1;
        col_count = PyMem_Calloc(span + 1, sizeof(Py_ssize_t));
        by_column = PyMem_Malloc(sizeof(uint64_t) * n);
        intervals = PyMem_Malloc(sizeof(uint64_t) * (n / 2 + 1));
        if (!col_count || !by_column || !intervals) { PyErr_NoMemory(); goto done; }
        for (Py_ssize_t i = 0; i < n; i++) col_count[crossings[i].col - cmin + 1]++;
        for (Py_ssize_t c = 1; c <= span; c++) col_count[c] += col_count[c - 1]; /* column starts */
        for (Py_ssize_t i = 0; i < n; i++) by_column[col_count[crossings[i].col - cmin]++] = crossings[i].key;
        /* col_count[c] is now the end of column c (= the start of column c + 1) */
        Py_ssize_t begin = 0;
        for (Py_ssize_t c = 0; c < span; c++) {
            Py_ssize_t end = col_count[c];
            sort_keys(by_column + begin, end - begin);
            area += column_area(by_column + begin, end - begin, intervals);
            begin = end;
        }
    }
    result = PyLong_FromLongLong(area);

done:
    Py_DECREF(fast);
    PyMem_Free(xs);
    PyMem_Free(ys);
    PyMem_Free(starts);
    PyMem_Free(crossings);
    PyMem_Free(col_count);
    PyMem_Free(by_column);
    PyMem_Free(intervals);
    return result;
}

static PyMethodDef methods[] = {
    {"union_area", union_area, METH_VARARGS,
     "union_area(polygons, width, height) -> int\n\n"
     "Pixels in the union of the flat polygons (clipped to [0, width] x [0, height]),\n"
     "rasterised as pycocotools does (see df2coco.geometry.union_area)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_polygon_area",
                                    "Exact pycocotools polygon areas without RLEs (optional C speed-up).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__polygon_area(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "MAX_SIDE", MAX_SIDE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
