/* glyph_render._accel: the raster's inner loop in C (optional; raster.py has a NumPy path).
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

static PyMethodDef methods[] = {
    {"blend", blend, METH_VARARGS, blend_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_accel",
    "The raster's glyph compositing loop in C (see raster.py for the NumPy equivalent).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__accel(void) { return PyModule_Create(&module); }
