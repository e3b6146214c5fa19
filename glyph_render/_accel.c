/* glyph_render._accel: the raster's inner loops in C (optional; raster.py has a NumPy path).
 *
 * Poppler's Splash composites a page's glyphs one at a time, in drawing order, each pixel
 * through d = ((255 - a) * d + a * c) / 255 (integer division). Done pixel by pixel in C this
 * is exact for overlapping glyphs too, and some 20 times cheaper than gathering the same
 * pixels with NumPy. The formula itself stays in Python: the caller passes it as a 64 KiB
 * table indexed by (coverage << 8 | pixel), one per colour.
 *
 * Buffers come through the buffer protocol, so NumPy is not needed at the C level.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static int get_buf(PyObject *obj, Buf *b, int writable, Py_ssize_t itemsize, const char *name) {
    if (PyObject_GetBuffer(obj, &b->view,
                           (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        < 0)
        return -1;
    b->held = 1;
    if (b->view.itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected items of %zd bytes, got %zd", name, itemsize,
                     b->view.itemsize);
        return -1;
    }
    return 0;
}

static void release(Buf *bufs, int n) {
    for (int i = 0; i < n; i++)
        if (bufs[i].held) PyBuffer_Release(&bufs[i].view);
}

PyDoc_STRVAR(blend_doc,
"blend(plane, width, height, ids, px, py, marker, start, count, left, top, box_w, box_h,\n"
"      dy, dx, flat, alpha, text_table, marker_table)\n"
"\n"
"Composite glyphs onto a uint8 plane (height x width) in the order given. Glyph j is atlas\n"
"glyph g = ids[j] at pen pixel (px[j], py[j]); its bitmap box is left[g], top[g], box_w[g],\n"
"box_h[g] from the pen, and its pixels are start[g] .. start[g] + count[g] of the packed\n"
"dy, dx, flat (dy * width + dx) and alpha (coverage 0..255) arrays. marker[j] (uint8) picks\n"
"marker_table over text_table. Integer arrays are int64. Pixels off the plane are skipped.");

enum { N_BUFS = 17 };

static PyObject *blend(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *o[N_BUFS];
    Py_ssize_t width, height;
    if (!PyArg_ParseTuple(args, "OnnOOOOOOOOOOOOOOOO", &o[0], &width, &height, &o[1], &o[2],
                          &o[3], &o[4], &o[5], &o[6], &o[7], &o[8], &o[9], &o[10], &o[11],
                          &o[12], &o[13], &o[14], &o[15], &o[16]))
        return NULL;
    Buf b[N_BUFS];
    memset(b, 0, sizeof b);
    static const char *names[N_BUFS] = {
        "plane", "ids", "px", "py", "marker", "start", "count", "left", "top", "box_w",
        "box_h", "dy", "dx", "flat", "alpha", "text_table", "marker_table"};
    static const Py_ssize_t sizes[N_BUFS] = {1, 8, 8, 8, 1, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 1, 1};
    for (int i = 0; i < N_BUFS; i++) {
        if (get_buf(o[i], &b[i], i == 0, sizes[i], names[i]) < 0) {
            release(b, N_BUFS);
            return NULL;
        }
    }
#define I64(k) ((const int64_t *)b[k].view.buf)
#define LEN8(k) (b[k].view.len / 8)
    uint8_t *plane = (uint8_t *)b[0].view.buf;
    const int64_t *ids = I64(1), *px = I64(2), *py = I64(3);
    const uint8_t *marker = (const uint8_t *)b[4].view.buf;
    const int64_t *start = I64(5), *count = I64(6), *left = I64(7), *top = I64(8),
                  *bw = I64(9), *bh = I64(10), *dy = I64(11), *dx = I64(12), *flat = I64(13),
                  *alpha = I64(14);
    const uint8_t *tt = (const uint8_t *)b[15].view.buf, *tm = (const uint8_t *)b[16].view.buf;
    Py_ssize_t n = LEN8(1), n_glyphs = LEN8(5), n_pix = LEN8(11);
    const char *bad = NULL;
    if (width < 0 || height < 0 || b[0].view.len < width * height)
        bad = "plane is smaller than width x height";
    else if (LEN8(2) != n || LEN8(3) != n || b[4].view.len != n)
        bad = "ids, px, py and marker differ in length";
    else if (LEN8(6) != n_glyphs || LEN8(7) != n_glyphs || LEN8(8) != n_glyphs ||
             LEN8(9) != n_glyphs || LEN8(10) != n_glyphs)
        bad = "start, count and the boxes differ in length";
    else if (LEN8(12) != n_pix || LEN8(13) != n_pix || LEN8(14) != n_pix)
        bad = "dy, dx, flat and alpha differ in length";
    else if (b[15].view.len != 65536 || b[16].view.len != 65536)
        bad = "tables must hold 65536 entries";
    if (bad) {
        release(b, N_BUFS);
        PyErr_SetString(PyExc_ValueError, bad);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t g = ids[j];
        if (g < 0 || g >= n_glyphs) { bad = "glyph id out of range"; break; }
        int64_t s = start[g], e = s + count[g];
        if (s < 0 || e < s || e > n_pix) { bad = "glyph pixels out of range"; break; }
        const uint8_t *tab = marker[j] ? tm : tt;
        int64_t x0 = px[j], y0 = py[j];
        int64_t bx = x0 + left[g], by = y0 + top[g];
        if (bx >= 0 && by >= 0 && bx + bw[g] <= width && by + bh[g] <= height) {
            /* the whole bitmap is on the plane: no per-pixel bounds */
            uint8_t *base = plane + y0 * width + x0;
            for (int64_t p = s; p < e; p++) {
                uint8_t *d = base + flat[p];
                *d = tab[((alpha[p] & 255) << 8) | *d];
            }
        } else {
            for (int64_t p = s; p < e; p++) {
                int64_t y = y0 + dy[p], x = x0 + dx[p];
                if (y < 0 || y >= height || x < 0 || x >= width) continue;
                uint8_t *d = plane + y * width + x;
                *d = tab[((alpha[p] & 255) << 8) | *d];
            }
        }
    }
    Py_END_ALLOW_THREADS
#undef I64
#undef LEN8
    release(b, N_BUFS);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, bad);
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(place_doc,
"place(cids, line_len, ux, tws, c4, widths, spaces, drawable, font_size, k,\n"
"      out_index, out_line, out_px, out_phase) -> int\n"
"\n"
"Poppler's pen along each line and the device pixel of every drawable character.\n"
"\n"
"The characters (cids, int64 ids into the per-id tables widths (float64), spaces and\n"
"drawable (uint8)) are the lines' texts one after another, line i holding line_len[i]. The\n"
"pen starts at ux[i] and advances by widths[cid] * font_size, plus tws[i] after a space,\n"
"added one character at a time as poppler adds. A drawable character's pen x maps to\n"
"xt = x * k + c4[i]; its pixel is floor(xt) and its phase floor((xt - floor(xt)) * 4).\n"
"Writes the kept characters' index, line, pixel and phase (int64 outputs, as long as cids)\n"
"and returns how many were kept.");

static int64_t to_i64(double v) {
    /* what NumPy's astype(int64) gives on x86-64 for NaN and values out of range */
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return INT64_MIN;
    return (int64_t)v;
}

static PyObject *place(PyObject *Py_UNUSED(self), PyObject *args) {
    enum { N = 12 };
    PyObject *o[N];
    double fs, k;
    if (!PyArg_ParseTuple(args, "OOOOOOOOddOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &fs, &k, &o[8], &o[9], &o[10], &o[11]))
        return NULL;
    Buf b[N];
    memset(b, 0, sizeof b);
    static const char *names[N] = {"cids", "line_len", "ux", "tws", "c4", "widths", "spaces",
                                   "drawable", "out_index", "out_line", "out_px", "out_phase"};
    static const Py_ssize_t sizes[N] = {8, 8, 8, 8, 8, 8, 1, 1, 8, 8, 8, 8};
    for (int i = 0; i < N; i++) {
        if (get_buf(o[i], &b[i], i >= 8, sizes[i], names[i]) < 0) {
            release(b, N);
            return NULL;
        }
    }
    const int64_t *cids = (const int64_t *)b[0].view.buf, *line_len = (const int64_t *)b[1].view.buf;
    const double *ux = (const double *)b[2].view.buf, *tws = (const double *)b[3].view.buf,
                 *c4 = (const double *)b[4].view.buf, *widths = (const double *)b[5].view.buf;
    const uint8_t *spaces = (const uint8_t *)b[6].view.buf,
                  *drawable = (const uint8_t *)b[7].view.buf;
    int64_t *oi = (int64_t *)b[8].view.buf, *ol = (int64_t *)b[9].view.buf,
            *ox = (int64_t *)b[10].view.buf, *op = (int64_t *)b[11].view.buf;
    Py_ssize_t total = b[0].view.len / 8, n_lines = b[1].view.len / 8, n_ids = b[5].view.len / 8;
    const char *bad = NULL;
    if (b[2].view.len / 8 != n_lines || b[3].view.len / 8 != n_lines ||
        b[4].view.len / 8 != n_lines)
        bad = "line_len, ux, tws and c4 differ in length";
    else if (b[6].view.len != n_ids || b[7].view.len != n_ids)
        bad = "widths, spaces and drawable differ in length";
    else if (b[8].view.len / 8 < total || b[9].view.len / 8 < total ||
             b[10].view.len / 8 < total || b[11].view.len / 8 < total)
        bad = "outputs shorter than cids";
    Py_ssize_t kept = 0;
    if (!bad) {
        Py_ssize_t j = 0;
        for (Py_ssize_t i = 0; i < n_lines && !bad; i++) {
            int64_t len = line_len[i];
            if (len < 0 || len > total - j) { bad = "line lengths exceed cids"; break; }
            double x = ux[i], tw = tws[i], off = c4[i];
            for (int64_t e = j + len; j < e; j++) {
                int64_t cid = cids[j];
                if (cid < 0 || cid >= n_ids) { bad = "character id out of range"; break; }
                if (drawable[cid]) {
                    double xt = x * k + off, x0 = floor(xt);
                    oi[kept] = j;
                    ol[kept] = i;
                    ox[kept] = to_i64(x0);
                    op[kept] = to_i64(floor((xt - x0) * 4.0));
                    kept++;
                }
                double adv = widths[cid] * fs;
                if (spaces[cid] && tw != 0.0) adv = adv + tw;
                x = x + adv;
            }
        }
        if (!bad && j != total) bad = "line lengths do not add up to cids";
    }
    release(b, N);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, bad);
        return NULL;
    }
    return PyLong_FromSsize_t(kept);
}

static PyMethodDef methods[] = {
    {"blend", blend, METH_VARARGS, blend_doc},
    {"place", place, METH_VARARGS, place_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_accel",
    "The raster's glyph compositing loop in C (see raster.py for the NumPy equivalent).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__accel(void) { return PyModule_Create(&module); }
