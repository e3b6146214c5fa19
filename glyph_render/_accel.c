/* glyph_render._accel: a page's raster in C (optional; raster.py and encode.py have NumPy paths).
 *
 * Poppler's Splash composites a page's glyphs one at a time, in drawing order, each pixel
 * through d = ((255 - a) * d + a * c) / 255 (integer division). Done pixel by pixel in C this
 * is exact for overlapping glyphs too, and some 20 times cheaper than gathering the same
 * pixels with NumPy. The caller passes the formula as a 64 KiB table indexed by
 * (coverage << 8 | pixel), one per colour (blend_table makes it; raster.py's NumPy one is the
 * definition it is tested against).
 *
 * The rest of a page's C path lives here too (character and glyph lookups, the glyph bitmaps'
 * pixels, fills, the auto-crop's scan, PNG rows), so that rendering a document needs no NumPy:
 * its import alone is a tenth of a short render. Buffers come through the buffer protocol
 * (array.array, bytearray, bytes, NumPy arrays alike); every length and index is checked.
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

/* ---- the rest of a page's C path: lookups, planes, crop, PNG rows ---------------------- */

static int check_item(Buf *b, Py_ssize_t itemsize, const char *name) {
    if (b->view.itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected items of %zd bytes, got %zd", name, itemsize,
                     b->view.itemsize);
        return -1;
    }
    return 0;
}

/* Any item size (checked by the caller): for buffers that hold 1- or 8-byte items. */
static int get_any(PyObject *obj, Buf *b, int writable) {
    if (PyObject_GetBuffer(obj, &b->view,
                           (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        < 0)
        return -1;
    b->held = 1;
    return 0;
}

static PyObject *fail(Buf *b, int n, const char *bad) {
    release(b, n);
    if (bad) PyErr_SetString(PyExc_ValueError, bad);
    return NULL;
}

PyDoc_STRVAR(char_ids_doc,
"char_ids(cps, lut, out) -> int\n"
"\n"
"Character ids of code points: out[i] = lut[cps[i]] (cps uint32, lut int32, out int64 at\n"
"least as long as cps), -1 where the code point is past the table or its entry is negative\n"
"(not yet in the table). Returns how many are -1.");

static PyObject *char_ids(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOO", &o[0], &o[1], &o[2])) return NULL;
    Buf b[3];
    memset(b, 0, sizeof b);
    if (get_buf(o[0], &b[0], 0, 4, "cps") < 0 || get_buf(o[1], &b[1], 0, 4, "lut") < 0 ||
        get_buf(o[2], &b[2], 1, 8, "out") < 0)
        return fail(b, 3, NULL);
    const uint32_t *cps = (const uint32_t *)b[0].view.buf;
    const int32_t *lut = (const int32_t *)b[1].view.buf;
    int64_t *out = (int64_t *)b[2].view.buf;
    Py_ssize_t n = b[0].view.len / 4, n_lut = b[1].view.len / 4;
    if (b[2].view.len / 8 < n) return fail(b, 3, "out is shorter than cps");
    Py_ssize_t misses = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t cp = cps[i];
        int64_t v = (Py_ssize_t)cp < n_lut ? lut[cp] : -1;
        if (v < 0) { v = -1; misses++; }
        out[i] = v;
    }
    Py_END_ALLOW_THREADS
    release(b, 3);
    return PyLong_FromSsize_t(misses);
}

PyDoc_STRVAR(atlas_ids_doc,
"atlas_ids(cids, index, phase, table, phases, out) -> int\n"
"\n"
"Atlas glyph ids of placed characters: out[j] = table[cids[index[j]] * phases + phase[j]]\n"
"(cids, index, phase and out int64, table int32), -1 where that key is past the table or its\n"
"entry is negative (a glyph not made yet). Returns how many are -1. An index outside cids,\n"
"a negative character id or a phase outside 0 .. phases - 1 is refused.");

static PyObject *atlas_ids(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *o[5];
    Py_ssize_t phases;
    if (!PyArg_ParseTuple(args, "OOOOnO", &o[0], &o[1], &o[2], &o[3], &phases, &o[4]))
        return NULL;
    Buf b[5];
    memset(b, 0, sizeof b);
    static const char *names[5] = {"cids", "index", "phase", "table", "out"};
    static const Py_ssize_t sizes[5] = {8, 8, 8, 4, 8};
    for (int i = 0; i < 5; i++)
        if (get_buf(o[i], &b[i], i == 4, sizes[i], names[i]) < 0) return fail(b, 5, NULL);
    const int64_t *cids = (const int64_t *)b[0].view.buf, *index = (const int64_t *)b[1].view.buf,
                  *phase = (const int64_t *)b[2].view.buf;
    const int32_t *table = (const int32_t *)b[3].view.buf;
    int64_t *out = (int64_t *)b[4].view.buf;
    Py_ssize_t n_cids = b[0].view.len / 8, n = b[1].view.len / 8, n_table = b[3].view.len / 4;
    if (phases < 1) return fail(b, 5, "phases must be at least 1");
    if (b[2].view.len / 8 != n) return fail(b, 5, "index and phase differ in length");
    if (b[4].view.len / 8 < n) return fail(b, 5, "out is shorter than index");
    const char *bad = NULL;
    Py_ssize_t misses = 0;
    const int64_t max_cid = (INT64_MAX - (phases - 1)) / phases; /* cid * phases + ph fits */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t i = index[j], ph = phase[j];
        if (i < 0 || i >= n_cids) { bad = "index out of range"; break; }
        if (ph < 0 || ph >= phases) { bad = "phase out of range"; break; }
        int64_t cid = cids[i];
        if (cid < 0 || cid > max_cid) { bad = "character id out of range"; break; }
        int64_t key = cid * phases + ph;
        int64_t v = key < n_table ? table[key] : -1;
        if (v < 0) { v = -1; misses++; }
        out[j] = v;
    }
    Py_END_ALLOW_THREADS
    if (bad) return fail(b, 5, bad);
    release(b, 5);
    return PyLong_FromSsize_t(misses);
}

PyDoc_STRVAR(take_doc,
"take(src, index, out)\n"
"\n"
"out[j] = src[index[j]] for every j of index (int64); src and out hold items of one size,\n"
"1 or 8 bytes, and out is at least as long as index. An index outside src is refused.");

static PyObject *take(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOO", &o[0], &o[1], &o[2])) return NULL;
    Buf b[3];
    memset(b, 0, sizeof b);
    if (get_any(o[0], &b[0], 0) < 0 || get_buf(o[1], &b[1], 0, 8, "index") < 0 ||
        get_any(o[2], &b[2], 1) < 0)
        return fail(b, 3, NULL);
    Py_ssize_t size = b[0].view.itemsize;
    if (size != 1 && size != 8) {
        release(b, 3);
        PyErr_Format(PyExc_TypeError, "src: expected items of 1 or 8 bytes, got %zd", size);
        return NULL;
    }
    if (check_item(&b[2], size, "out") < 0) return fail(b, 3, NULL);
    const int64_t *index = (const int64_t *)b[1].view.buf;
    Py_ssize_t n_src = b[0].view.len / size, n = b[1].view.len / 8;
    if (b[2].view.len / size < n) return fail(b, 3, "out is shorter than index");
    const char *bad = NULL;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t i = index[j];
        if (i < 0 || i >= n_src) { bad = "index out of range"; break; }
        if (size == 1)
            ((uint8_t *)b[2].view.buf)[j] = ((const uint8_t *)b[0].view.buf)[i];
        else
            ((int64_t *)b[2].view.buf)[j] = ((const int64_t *)b[0].view.buf)[i];
    }
    Py_END_ALLOW_THREADS
    if (bad) return fail(b, 3, bad);
    release(b, 3);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(glyph_pixels_doc,
"glyph_pixels(bitmap, pitch, width, rows, left, top, out_dy, out_dx, out_alpha) -> int\n"
"\n"
"A glyph bitmap's non-zero pixels, row by row from the top, as offsets from the pen pixel\n"
"(dy = row - top, dx = column + left) and coverage (int64 outputs, at least width x rows\n"
"long). Row r starts at byte r * pitch of bitmap, or (rows - 1 - r) * -pitch for a negative\n"
"pitch (FreeType's bottom-up bitmaps). Returns how many pixels were written.");

static PyObject *glyph_pixels(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *o[4];
    Py_ssize_t pitch, width, rows, left, top;
    if (!PyArg_ParseTuple(args, "OnnnnnOOO", &o[0], &pitch, &width, &rows, &left, &top, &o[1],
                          &o[2], &o[3]))
        return NULL;
    Buf b[4];
    memset(b, 0, sizeof b);
    if (get_buf(o[0], &b[0], 0, 1, "bitmap") < 0 || get_buf(o[1], &b[1], 1, 8, "out_dy") < 0 ||
        get_buf(o[2], &b[2], 1, 8, "out_dx") < 0 || get_buf(o[3], &b[3], 1, 8, "out_alpha") < 0)
        return fail(b, 4, NULL);
    Py_ssize_t step = pitch < 0 ? -pitch : pitch;
    if (width < 0 || rows < 0 || width > step)
        return fail(b, 4, "width must lie within the pitch");
    if (rows && b[0].view.len < step * rows) return fail(b, 4, "bitmap is smaller than pitch x rows");
    Py_ssize_t cap = width * rows;
    if (b[1].view.len / 8 < cap || b[2].view.len / 8 < cap || b[3].view.len / 8 < cap)
        return fail(b, 4, "outputs shorter than width x rows");
    const uint8_t *bm = (const uint8_t *)b[0].view.buf;
    int64_t *dy = (int64_t *)b[1].view.buf, *dx = (int64_t *)b[2].view.buf,
            *alpha = (int64_t *)b[3].view.buf;
    Py_ssize_t n = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        const uint8_t *row = bm + (pitch < 0 ? (rows - 1 - r) * step : r * step);
        for (Py_ssize_t c = 0; c < width; c++) {
            if (row[c]) {
                dy[n] = r - top;
                dx[n] = c + left;
                alpha[n] = row[c];
                n++;
            }
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 4);
    return PyLong_FromSsize_t(n);
}

PyDoc_STRVAR(flat_offsets_doc,
"flat_offsets(dy, dx, width, out)\n"
"\n"
"out[p] = dy[p] * width + dx[p] (int64): each packed glyph pixel's offset from its pen pixel\n"
"in a plane ``width`` wide.");

static PyObject *flat_offsets(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *o[3];
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "OOnO", &o[0], &o[1], &width, &o[2])) return NULL;
    Buf b[3];
    memset(b, 0, sizeof b);
    if (get_buf(o[0], &b[0], 0, 8, "dy") < 0 || get_buf(o[1], &b[1], 0, 8, "dx") < 0 ||
        get_buf(o[2], &b[2], 1, 8, "out") < 0)
        return fail(b, 3, NULL);
    Py_ssize_t n = b[0].view.len / 8;
    if (b[1].view.len / 8 != n) return fail(b, 3, "dy and dx differ in length");
    if (b[2].view.len / 8 < n) return fail(b, 3, "out is shorter than dy");
    if (width < 0 || width > ((Py_ssize_t)1 << 31)) return fail(b, 3, "width out of range");
    const int64_t *dy = (const int64_t *)b[0].view.buf, *dx = (const int64_t *)b[1].view.buf;
    int64_t *out = (int64_t *)b[2].view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t p = 0; p < n; p++) out[p] = dy[p] * (int64_t)width + dx[p];
    Py_END_ALLOW_THREADS
    release(b, 3);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(blend_table_doc,
"blend_table(colour) -> bytes\n"
"\n"
"The 64 KiB table blend takes: ((255 - a) * d + a * colour) // 255 at (a << 8 | d), for every\n"
"coverage a and pixel d (raster._blend_table's NumPy formula, the same integers).");

static PyObject *blend_table(PyObject *Py_UNUSED(self), PyObject *args) {
    long colour;
    if (!PyArg_ParseTuple(args, "l", &colour)) return NULL;
    if (colour < 0 || colour > 255) {
        PyErr_Format(PyExc_ValueError, "colour %ld is outside 0..255", colour);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, 65536);
    if (!out) return NULL;
    uint8_t *t = (uint8_t *)PyBytes_AS_STRING(out);
    for (long a = 0; a < 256; a++)
        for (long d = 0; d < 256; d++) t[a << 8 | d] = (uint8_t)(((255 - a) * d + a * colour) / 255);
    return out;
}

PyDoc_STRVAR(fill_doc,
"fill(plane, width, height, x0, y0, x1, y1, value)\n"
"\n"
"Set the pixels x0 <= x < x1, y0 <= y < y1 of a uint8 plane (height x width) to value, the\n"
"box clipped to the plane.");

static PyObject *fill(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *o;
    Py_ssize_t width, height, x0, y0, x1, y1;
    long value;
    if (!PyArg_ParseTuple(args, "Onnnnnnl", &o, &width, &height, &x0, &y0, &x1, &y1, &value))
        return NULL;
    Buf b[1];
    memset(b, 0, sizeof b);
    if (get_buf(o, &b[0], 1, 1, "plane") < 0) return fail(b, 1, NULL);
    if (width < 0 || height < 0 || (width && height > b[0].view.len / width))
        return fail(b, 1, "plane is smaller than width x height");
    if (value < 0 || value > 255) return fail(b, 1, "value is outside 0..255");
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > width ? width : x1;
    y1 = y1 > height ? height : y1;
    uint8_t *plane = (uint8_t *)b[0].view.buf;
    if (x0 < x1 && y0 < y1) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t y = y0; y < y1; y++) memset(plane + y * width + x0, (int)value, x1 - x0);
        Py_END_ALLOW_THREADS
    }
    release(b, 1);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(last_ink_doc,
"last_ink(planes, stride, cols, rows, lo, hi, axis, start) -> int\n"
"\n"
"The auto-crop's scan. planes: a tuple of one uint8 plane (grey) or three (R, G, B), rows of\n"
"``stride`` bytes; only the first ``cols`` columns of the first ``rows`` rows are read. A\n"
"pixel is ink when its grey (for RGB, Pillow's (R*19595 + G*38470 + B*7471 + 0x8000) >> 16)\n"
"is above hi or below lo. Returns the last column (axis 0) or row (axis 1) from ``start`` on\n"
"that holds ink, -1 if none.");

static inline int grey_at(const uint8_t *const *p, int n, Py_ssize_t i) {
    if (n == 1) return p[0][i];
    return (p[0][i] * 19595 + p[1][i] * 38470 + p[2][i] * 7471 + 0x8000) >> 16;
}

static PyObject *last_ink(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *tup;
    Py_ssize_t stride, cols, rows, start;
    long lo, hi;
    int axis;
    if (!PyArg_ParseTuple(args, "O!nnnllin", &PyTuple_Type, &tup, &stride, &cols, &rows, &lo,
                          &hi, &axis, &start))
        return NULL;
    Py_ssize_t np_ = PyTuple_GET_SIZE(tup);
    if (np_ != 1 && np_ != 3) {
        PyErr_SetString(PyExc_ValueError, "planes must hold 1 or 3 planes");
        return NULL;
    }
    Buf b[3];
    memset(b, 0, sizeof b);
    const uint8_t *p[3] = {NULL, NULL, NULL};
    for (Py_ssize_t i = 0; i < np_; i++) {
        if (get_buf(PyTuple_GET_ITEM(tup, i), &b[i], 0, 1, "plane") < 0) return fail(b, 3, NULL);
        p[i] = (const uint8_t *)b[i].view.buf;
    }
    if (axis != 0 && axis != 1) return fail(b, 3, "axis must be 0 or 1");
    if (stride < 0 || cols < 0 || rows < 0 || cols > stride) return fail(b, 3, "bad plane size");
    for (Py_ssize_t i = 0; i < np_; i++)
        if (rows && (stride == 0 || rows > b[i].view.len / stride))
            return fail(b, 3, "plane is smaller than stride x rows");
    int n = (int)np_;
    Py_ssize_t found = -1;
    if (start < 0) start = 0;
    Py_BEGIN_ALLOW_THREADS
    if (axis == 0) {
        /* columns from the right: the blank margin is all that is read before the ink */
        for (Py_ssize_t x = cols - 1; x >= start && found < 0; x--) {
            for (Py_ssize_t y = 0; y < rows; y++) {
                int g = grey_at(p, n, y * stride + x);
                if (g > hi || g < lo) { found = x; break; }
            }
        }
    } else {
        for (Py_ssize_t y = rows - 1; y >= start && found < 0; y--) {
            for (Py_ssize_t x = 0; x < cols; x++) {
                int g = grey_at(p, n, y * stride + x);
                if (g > hi || g < lo) { found = y; break; }
            }
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 3);
    return PyLong_FromSsize_t(found);
}

PyDoc_STRVAR(png_rows_doc,
"png_rows(src, stride, row_bytes, rows, out)\n"
"\n"
"PNG's filtered scanlines with filter type 0 (None): per row, a zero byte and then the\n"
"row's first row_bytes bytes of src (rows ``stride`` bytes apart). out holds at least\n"
"rows x (row_bytes + 1) bytes.");

static PyObject *png_rows(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *o[2];
    Py_ssize_t stride, row_bytes, rows;
    if (!PyArg_ParseTuple(args, "OnnnO", &o[0], &stride, &row_bytes, &rows, &o[1])) return NULL;
    Buf b[2];
    memset(b, 0, sizeof b);
    if (get_buf(o[0], &b[0], 0, 1, "src") < 0 || get_buf(o[1], &b[1], 1, 1, "out") < 0)
        return fail(b, 2, NULL);
    if (stride < 0 || row_bytes < 0 || rows < 0 || row_bytes > stride)
        return fail(b, 2, "bad row size");
    if (rows && (b[0].view.len - row_bytes) / (stride ? stride : 1) < rows - 1)
        return fail(b, 2, "src is smaller than its rows");
    if (rows && b[1].view.len / (row_bytes + 1) < rows)
        return fail(b, 2, "out is smaller than rows x (row_bytes + 1)");
    const uint8_t *src = (const uint8_t *)b[0].view.buf;
    uint8_t *out = (uint8_t *)b[1].view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        uint8_t *d = out + r * (row_bytes + 1);
        d[0] = 0;
        memcpy(d + 1, src + r * stride, row_bytes);
    }
    Py_END_ALLOW_THREADS
    release(b, 2);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"blend", blend, METH_VARARGS, blend_doc},
    {"place", place, METH_VARARGS, place_doc},
    {"char_ids", char_ids, METH_VARARGS, char_ids_doc},
    {"atlas_ids", atlas_ids, METH_VARARGS, atlas_ids_doc},
    {"take", take, METH_VARARGS, take_doc},
    {"glyph_pixels", glyph_pixels, METH_VARARGS, glyph_pixels_doc},
    {"flat_offsets", flat_offsets, METH_VARARGS, flat_offsets_doc},
    {"blend_table", blend_table, METH_VARARGS, blend_table_doc},
    {"fill", fill, METH_VARARGS, fill_doc},
    {"last_ink", last_ink, METH_VARARGS, last_ink_doc},
    {"png_rows", png_rows, METH_VARARGS, png_rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_accel",
    "A page's raster in C, from its text to PNG rows (see raster.py and encode.py for the NumPy\n"
    "equivalents, which run without this module).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__accel(void) { return PyModule_Create(&module); }
