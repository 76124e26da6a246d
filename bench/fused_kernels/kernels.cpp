// Fused CPU kernels for the per-example part of closed_form.py's training step.
// Plain loops; the inner loop over columns is left to the compiler's vectoriser
// (-O3 [-march=native]); `#pragma omp simd` needs only -fopenmp-simd (no threads).
// Every function writes into caller-owned buffers (as the step's scratch would be).
#include <torch/extension.h>
#include <cmath>
#include <cstring>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#include <sleef.h>  // the same Sleef functions torch's own exp_/log1p kernels call (libtorch_cpu)
#endif

#define CHECKF(t) TORCH_CHECK((t).is_contiguous() && (t).scalar_type() == torch::kFloat, #t)
#define CHECKL(t) TORCH_CHECK((t).is_contiguous() && (t).scalar_type() == torch::kLong, #t)

// ---------------------------------------------------------------- forward bag (+ ReLU)
// out[b, :] = (relu) sum_j w[b S + j] T[idx[b S + j], :], summed j = 0..S-1 from 0
// (acc = 0; acc += w t, contracted to an FMA under -march=native).
template <bool RELU>
static void bag_simple(const int64_t* idx, const float* w, const float* T, int64_t ldT,
                       float* out, int64_t ldo, int64_t B, int64_t S, int64_t W) {
  for (int64_t b = 0; b < B; ++b) {
    float* __restrict o = out + b * ldo;
    const int64_t* ib = idx + b * S;
    const float* wb = w + b * S;
    for (int64_t c = 0; c < W; ++c) o[c] = 0.f;
    for (int64_t j = 0; j < S; ++j) {
      const float* __restrict t = T + ib[j] * ldT;
      const float a = wb[j];
#pragma omp simd
      for (int64_t c = 0; c < W; ++c) o[c] += a * t[c];
    }
    if (RELU) {
#pragma omp simd
      for (int64_t c = 0; c < W; ++c) o[c] = o[c] > 0.f ? o[c] : 0.f;
    }
  }
}

// Same sums, columns in register blocks of CB (accumulators stay in registers across j).
template <bool RELU, int CB>
static void bag_blocked(const int64_t* idx, const float* w, const float* T, int64_t ldT,
                        float* out, int64_t ldo, int64_t B, int64_t S, int64_t W) {
  const int64_t Wfull = W / CB * CB;
  for (int64_t b = 0; b < B; ++b) {
    float* __restrict o = out + b * ldo;
    const int64_t* ib = idx + b * S;
    const float* wb = w + b * S;
    for (int64_t c0 = 0; c0 < Wfull; c0 += CB) {
      float acc[CB];
#pragma omp simd
      for (int c = 0; c < CB; ++c) acc[c] = 0.f;
      for (int64_t j = 0; j < S; ++j) {
        const float* __restrict t = T + ib[j] * ldT + c0;
        const float a = wb[j];
#pragma omp simd
        for (int c = 0; c < CB; ++c) acc[c] += a * t[c];
      }
#pragma omp simd
      for (int c = 0; c < CB; ++c) o[c0 + c] = RELU ? (acc[c] > 0.f ? acc[c] : 0.f) : acc[c];
    }
    if (Wfull < W) {  // the tail (W not a multiple of CB)
      float acc[CB];
      const int64_t n = W - Wfull;
      for (int64_t c = 0; c < n; ++c) acc[c] = 0.f;
      for (int64_t j = 0; j < S; ++j) {
        const float* __restrict t = T + ib[j] * ldT + Wfull;
        const float a = wb[j];
        for (int64_t c = 0; c < n; ++c) acc[c] += a * t[c];
      }
      for (int64_t c = 0; c < n; ++c)
        o[Wfull + c] = RELU ? (acc[c] > 0.f ? acc[c] : 0.f) : acc[c];
    }
  }
}


// Variant 3: the same sums with GCC vector extensions (explicit 16-float registers:
// 4 accumulators of 16 across the 9 rows, then 16-wide blocks, then a scalar tail).
typedef float v16 __attribute__((vector_size(64), aligned(4)));
static inline v16 ld16(const float* p) { return *(const v16*)p; }
static inline void st16(float* p, v16 v) { *(v16*)p = v; }
template <bool RELU>
static void bag_vec(const int64_t* idx, const float* w, const float* T, int64_t ldT,
                    float* out, int64_t ldo, int64_t B, int64_t S, int64_t W) {
  const v16 zero = {};
  for (int64_t b = 0; b < B; ++b) {
    float* o = out + b * ldo;
    const int64_t* ib = idx + b * S;
    const float* wb = w + b * S;
    int64_t c0 = 0;
    for (; c0 + 64 <= W; c0 += 64) {
      v16 a0 = zero, a1 = zero, a2 = zero, a3 = zero;
      for (int64_t j = 0; j < S; ++j) {
        const float* t = T + ib[j] * ldT + c0;
        const v16 s = zero + wb[j];
        a0 += s * ld16(t); a1 += s * ld16(t + 16); a2 += s * ld16(t + 32); a3 += s * ld16(t + 48);
      }
      if (RELU) { a0 = a0 > zero ? a0 : zero; a1 = a1 > zero ? a1 : zero; a2 = a2 > zero ? a2 : zero; a3 = a3 > zero ? a3 : zero; }
      st16(o + c0, a0); st16(o + c0 + 16, a1); st16(o + c0 + 32, a2); st16(o + c0 + 48, a3);
    }
    for (; c0 + 16 <= W; c0 += 16) {
      v16 a0 = zero;
      for (int64_t j = 0; j < S; ++j) a0 += (zero + wb[j]) * ld16(T + ib[j] * ldT + c0);
      if (RELU) a0 = a0 > zero ? a0 : zero;
      st16(o + c0, a0);
    }
    for (int64_t c = c0; c < W; ++c) {
      float a = 0.f;
      for (int64_t j = 0; j < S; ++j) a += wb[j] * T[ib[j] * ldT + c];
      o[c] = RELU ? (a > 0.f ? a : 0.f) : a;
    }
  }
}


#if defined(__AVX512F__)
// Variant 4 (native build only): as variant 3, but the last <= 64 columns with masked
// AVX-512 loads/stores instead of 16-blocks + a scalar tail (narrow logits widths).
template <bool RELU>
static void bag_mask(const int64_t* idx, const float* w, const float* T, int64_t ldT,
                     float* out, int64_t ldo, int64_t B, int64_t S, int64_t W) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t b = 0; b < B; ++b) {
    float* o = out + b * ldo;
    const int64_t* ib = idx + b * S;
    const float* wb = w + b * S;
    for (int64_t c0 = 0; c0 < W; c0 += 64) {
      const int64_t n = W - c0 < 64 ? W - c0 : 64;
      __mmask16 m[4];
      for (int k = 0; k < 4; ++k) {
        const int64_t r = n - 16 * k;
        m[k] = r >= 16 ? (__mmask16)0xFFFF : r <= 0 ? (__mmask16)0 : (__mmask16)((1u << r) - 1);
      }
      __m512 a0 = zero, a1 = zero, a2 = zero, a3 = zero;
      if (n == 64) {  // a full chunk: plain loads
        for (int64_t j = 0; j < S; ++j) {
          const float* t = T + ib[j] * ldT + c0;
          const __m512 s = _mm512_set1_ps(wb[j]);
          a0 = _mm512_fmadd_ps(s, _mm512_loadu_ps(t), a0);
          a1 = _mm512_fmadd_ps(s, _mm512_loadu_ps(t + 16), a1);
          a2 = _mm512_fmadd_ps(s, _mm512_loadu_ps(t + 32), a2);
          a3 = _mm512_fmadd_ps(s, _mm512_loadu_ps(t + 48), a3);
        }
      } else for (int64_t j = 0; j < S; ++j) {
        const float* t = T + ib[j] * ldT + c0;
        const __m512 s = _mm512_set1_ps(wb[j]);
        a0 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(m[0], t), a0);
        a1 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(m[1], t + 16), a1);
        a2 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(m[2], t + 32), a2);
        a3 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(m[3], t + 48), a3);
      }
      if (RELU) {  // x > 0 ? x : 0 (as variant 0-3)
        a0 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a0, zero, _CMP_GT_OQ), a0);
        a1 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a1, zero, _CMP_GT_OQ), a1);
        a2 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a2, zero, _CMP_GT_OQ), a2);
        a3 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a3, zero, _CMP_GT_OQ), a3);
      }
      _mm512_mask_storeu_ps(o + c0, m[0], a0);
      _mm512_mask_storeu_ps(o + c0 + 16, m[1], a1);
      _mm512_mask_storeu_ps(o + c0 + 32, m[2], a2);
      _mm512_mask_storeu_ps(o + c0 + 48, m[3], a3);
    }
  }
}
#define BAG_BEST bag_mask
#else
#define BAG_BEST bag_vec
#endif

// idx (B, S) int64, w (B S,), table (R, W): returns nothing, writes out (B, W).
void bag_fwd(torch::Tensor idx, torch::Tensor w, torch::Tensor table, torch::Tensor out,
             bool relu, int64_t variant) {
  CHECKL(idx); CHECKF(w); CHECKF(table); CHECKF(out);
  const int64_t B = idx.size(0), S = idx.size(1), W = table.size(1);
  TORCH_CHECK(out.size(0) == B && out.size(1) == W);
  auto* I = idx.data_ptr<int64_t>();
  auto* Wt = w.data_ptr<float>();
  auto* T = table.data_ptr<float>();
  auto* O = out.data_ptr<float>();
  if (variant == 0) {
    if (relu) bag_simple<true>(I, Wt, T, W, O, W, B, S, W);
    else bag_simple<false>(I, Wt, T, W, O, W, B, S, W);
  } else if (variant == 1) {
    if (relu) bag_blocked<true, 64>(I, Wt, T, W, O, W, B, S, W);
    else bag_blocked<false, 64>(I, Wt, T, W, O, W, B, S, W);
  } else if (variant == 3) {
    if (relu) bag_vec<true>(I, Wt, T, W, O, W, B, S, W);
    else bag_vec<false>(I, Wt, T, W, O, W, B, S, W);
  } else if (variant == 4) {  // bag_mask where AVX-512 is compiled in, else bag_vec
    if (relu) BAG_BEST<true>(I, Wt, T, W, O, W, B, S, W);
    else BAG_BEST<false>(I, Wt, T, W, O, W, B, S, W);
  } else {
    if (relu) bag_blocked<true, 128>(I, Wt, T, W, O, W, B, S, W);
    else bag_blocked<false, 128>(I, Wt, T, W, O, W, B, S, W);
  }
}

// Both forward bags in one pass over the full table (R, V + D) (no read_halves copies):
// logits (B, V) without ReLU, post (B, D) with it.
void bag_fwd_both(torch::Tensor idx, torch::Tensor w, torch::Tensor table, torch::Tensor logits,
                  torch::Tensor post) {
  CHECKL(idx); CHECKF(w); CHECKF(table); CHECKF(logits); CHECKF(post);
  const int64_t B = idx.size(0), S = idx.size(1), V = logits.size(1), D = post.size(1);
  TORCH_CHECK(table.size(1) == V + D);
  auto* I = idx.data_ptr<int64_t>();
  auto* Wt = w.data_ptr<float>();
  auto* T = table.data_ptr<float>();
  // one example at a time, both blocks, so each table row is touched once per example
  for (int64_t b = 0; b < B; ++b) {
    BAG_BEST<false>(I + b * S, Wt + b * S, T, V + D, logits.data_ptr<float>() + b * V, V, 1, S, V);
    BAG_BEST<true>(I + b * S, Wt + b * S, T + V, V + D, post.data_ptr<float>() + b * D, D, 1, S, D);
  }
}

// ---------------------------------------------------------------- transposed bag
// grad_slots[r, :] = sum over (b, j) with idx[b, j] = r of w[b S + j] G[b, :], in ascending b
// (the order of torch's bag over slots.examples, whose perm is a stable argsort).
// Scatter form: each G row is read once and added to its S output rows.
void bag_t_scatter(torch::Tensor idx, torch::Tensor w, torch::Tensor G, torch::Tensor out) {
  CHECKL(idx); CHECKF(w); CHECKF(G); CHECKF(out);
  const int64_t B = idx.size(0), S = idx.size(1), W = G.size(1), R = out.size(0);
  TORCH_CHECK(out.size(1) == W);
  auto* I = idx.data_ptr<int64_t>();
  auto* Wt = w.data_ptr<float>();
  auto* g0 = G.data_ptr<float>();
  auto* O = out.data_ptr<float>();
  std::memset(O, 0, sizeof(float) * R * W);
  for (int64_t b = 0; b < B; ++b) {
    const float* __restrict g = g0 + b * W;
    for (int64_t j = 0; j < S; ++j) {
      float* __restrict o = O + I[b * S + j] * W;
      const float a = Wt[b * S + j];
#pragma omp simd
      for (int64_t c = 0; c < W; ++c) o[c] += a * g[c];
    }
  }
}

// Gather (CSR) form, as torch's bag: row r sums examples[offsets[r] .. offsets[r+1]).
// pw: the weights already in perm order (as the step passes them to torch).
void bag_t_gather(torch::Tensor examples, torch::Tensor offsets, torch::Tensor pw, torch::Tensor G,
                  torch::Tensor out) {
  CHECKL(examples); CHECKL(offsets); CHECKF(pw); CHECKF(G); CHECKF(out);
  const int64_t R = out.size(0), W = G.size(1), N = examples.size(0);
  auto* E = examples.data_ptr<int64_t>();
  auto* off = offsets.data_ptr<int64_t>();
  auto* P = pw.data_ptr<float>();
  auto* g0 = G.data_ptr<float>();
  auto* O = out.data_ptr<float>();
  for (int64_t r = 0; r < R; ++r) {
    float* __restrict o = O + r * W;
    for (int64_t c = 0; c < W; ++c) o[c] = 0.f;
    const int64_t k1 = r + 1 < R ? off[r + 1] : N;
    for (int64_t k = off[r]; k < k1; ++k) {
      const float* __restrict g = g0 + E[k] * W;
      const float a = P[k];
#pragma omp simd
      for (int64_t c = 0; c < W; ++c) o[c] += a * g[c];
    }
  }
}

// ---------------------------------------------------------------- cross-entropy
#if defined(__AVX512F__)
static inline void exp_row(const float* l, float shift, float* o, int64_t V) {
  const __m512 s = _mm512_set1_ps(shift);
  int64_t c = 0;
  for (; c + 16 <= V; c += 16)
    _mm512_storeu_ps(o + c, Sleef_expf16_u10(_mm512_sub_ps(_mm512_loadu_ps(l + c), s)));
  if (c < V) {
    const __mmask16 m = (__mmask16)((1u << (V - c)) - 1);
    const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, l + c), s);
    _mm512_mask_storeu_ps(o + c, m, Sleef_expf16_u10(x));
  }
}
static inline float exp1(float x) { return _mm512_cvtss_f32(Sleef_expf16_u10(_mm512_set1_ps(x))); }
static inline float log1p1(float x) { return _mm512_cvtss_f32(Sleef_log1pf16_u10(_mm512_set1_ps(x))); }
#else
static inline void exp_row(const float* l, float shift, float* o, int64_t V) {
  for (int64_t c = 0; c < V; ++c) o[c] = std::exp(l[c] - shift);
}
static inline float exp1(float x) { return std::exp(x); }
static inline float log1p1(float x) { return std::log1p(x); }
#endif

// closed_form.cross_entropy in one pass per row: `out` (B, V) gets dloss/dlogits (with
// row_scale (B,) and the floor) or, with an empty row_scale, exp(z_j) (0 at the label);
// `both` (B, 2) [row loss, correct]; the member means stay with the caller (torch.mean).
void cross_entropy(torch::Tensor logits, torch::Tensor labels, torch::Tensor out,
                   torch::Tensor both, torch::Tensor row_scale, double floor_) {
  CHECKF(logits); CHECKL(labels); CHECKF(out); CHECKF(both);
  const int64_t B = logits.size(0), V = logits.size(1);
  const bool grad = row_scale.numel() > 0;
  const float* L = logits.data_ptr<float>();
  const int64_t* lab = labels.data_ptr<int64_t>();
  float* O = out.data_ptr<float>();
  float* R = both.data_ptr<float>();
  const float* rs = grad ? row_scale.data_ptr<float>() : nullptr;
  const float fl = (float)floor_;
  for (int64_t b = 0; b < B; ++b) {
    const float* __restrict l = L + b * V;
    float* __restrict o = O + b * V;
    float m = l[0];
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < V; ++c) m = l[c] > m ? l[c] : m;
    const int64_t y = lab[b];
    const float zl = l[y] - m;
    exp_row(l, m, o, V);
    o[y] = 0.f;
    float rest = 0.f;
#pragma omp simd reduction(+ : rest)
    for (int64_t c = 0; c < V; ++c) rest += o[c];
    const float lt = exp1(zl);
    R[2 * b] = log1p1(rest + (lt - 1.0f)) - zl;
    R[2 * b + 1] = zl == 0.f ? 1.f : 0.f;
    if (grad) {
      const float scale = rs[b] / (lt + rest);
#pragma omp simd
      for (int64_t c = 0; c < V; ++c) {
        const float v = o[c] * scale;
        o[c] = v > fl ? v : 0.f;
      }
      const float lg = scale * rest;
      o[y] = -(lg > fl ? lg : 0.f);
    }
  }
}

// The same arithmetic in three passes: rows (max, exp, rest), then the per-row scalars
// 16 rows at a time (Sleef exp/log1p vectorised over rows), then the gradient rows.
#if defined(__AVX512F__)
static inline void exp_vec(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, Sleef_expf16_u10(_mm512_loadu_ps(x + i)));
  if (i < n) { const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, Sleef_expf16_u10(_mm512_maskz_loadu_ps(m, x + i))); }
}
static inline void log1p_vec(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, Sleef_log1pf16_u10(_mm512_loadu_ps(x + i)));
  if (i < n) { const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, Sleef_log1pf16_u10(_mm512_maskz_loadu_ps(m, x + i))); }
}
#else
static inline void exp_vec(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]); }
static inline void log1p_vec(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = std::log1p(x[i]); }
#endif
void cross_entropy3(torch::Tensor logits, torch::Tensor labels, torch::Tensor out,
                    torch::Tensor both, torch::Tensor row_scale, double floor_) {
  CHECKF(logits); CHECKL(labels); CHECKF(out); CHECKF(both);
  const int64_t B = logits.size(0), V = logits.size(1);
  const bool grad = row_scale.numel() > 0;
  const float* L = logits.data_ptr<float>();
  const int64_t* lab = labels.data_ptr<int64_t>();
  float* O = out.data_ptr<float>();
  float* R = both.data_ptr<float>();
  const float* rs = grad ? row_scale.data_ptr<float>() : nullptr;
  const float fl = (float)floor_;
  std::vector<float> zl(B), rest(B), lt(B), tmp(B);
  for (int64_t b = 0; b < B; ++b) {
    const float* __restrict l = L + b * V;
    float* __restrict o = O + b * V;
    float m = l[0];
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < V; ++c) m = l[c] > m ? l[c] : m;
    zl[b] = l[lab[b]] - m;
    exp_row(l, m, o, V);
    o[lab[b]] = 0.f;
    float r = 0.f;
#pragma omp simd reduction(+ : r)
    for (int64_t c = 0; c < V; ++c) r += o[c];
    rest[b] = r;
  }
  exp_vec(zl.data(), lt.data(), B);
#pragma omp simd
  for (int64_t b = 0; b < B; ++b) tmp[b] = rest[b] + (lt[b] - 1.0f);
  log1p_vec(tmp.data(), tmp.data(), B);
  for (int64_t b = 0; b < B; ++b) {
    R[2 * b] = tmp[b] - zl[b];
    R[2 * b + 1] = zl[b] == 0.f ? 1.f : 0.f;
  }
  if (!grad) return;
  for (int64_t b = 0; b < B; ++b) {
    float* __restrict o = O + b * V;
    const float scale = rs[b] / (lt[b] + rest[b]);
#pragma omp simd
    for (int64_t c = 0; c < V; ++c) {
      const float v = o[c] * scale;
      o[c] = v > fl ? v : 0.f;
    }
    const float lg = scale * rest[b];
    o[lab[b]] = -(lg > fl ? lg : 0.f);
  }
}
