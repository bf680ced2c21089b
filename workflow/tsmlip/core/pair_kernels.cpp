// The fast engine's pair terms as fused CPU loops, registered as torch operators (namespace ``tsmlip``, TORCH_LIBRARY
// at the end): tsmlip.core.pair_kernels builds this file with torch's cpp_extension on first use (the training
// engine and the export call them as torch.ops.tsmlip.*), and lammps/CMakeLists.txt builds the same file into
// tsmlip_ops.so, which pair_style tsmlip loads before it loads an exported model that calls them. The same
// arithmetic as the torch path of tsmlip.core.hipnn_stack (_Sensitivities, _Environment, _PairForces), one pass over
// the pairs per stage instead of one pass per torch operation; tests/test_fast_engine.py holds both paths equal to
// hippynn (every loss term and gradient), tests/test_export.py and tests/test_lammps.py the exported model that
// calls them equal to the plain one and to the ASE calculator.
//
// Layout: pairs p = 0..P-1 with float32 dist[P], unit[P,3] (r_ij / d_ij), row[P] (the environment row the pair
// adds to: first atom row x species + species of the second), first[P], second[P] (atom rows), model[P] (empty:
// every pair of model 0); per model m the inverse centres inv_mu[M,nu] and squared widths sig2[M,nu]; per pair
// s[P,nu], ds[P,nu]; the environment and its gradient env[R,4,nu] (k = 0: sum s, k = 1..3: sum s u_k).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <tuple>

namespace {

void check(const at::Tensor& t, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == dtype, name, " has the wrong dtype");
}

// The geometry of one pair that needs no weights: 1/d, 1/d^2, hippynn's CosCutoff cos^2(pi d / 2 d_hard) inside
// d_hard and its derivative.
struct PairGeometry {
  float inv_d, inv_d2, cut, dcut;
  PairGeometry(float d, float a, float cutoff) {
    inv_d = 1.0f / d;
    inv_d2 = inv_d * inv_d;
    const float arg = a * d;
    const float inside = d <= cutoff ? 1.0f : 0.0f;
    // sin(2 arg), not 2 sin cos: the training engine's float32 rounding stays that of the trained models
    const float c = std::cos(arg);
    cut = c * c * inside;
    dcut = -a * std::sin(2.0f * arg) * inside;
  }
};

// One pair's sensitivities: s = g cut, ds = g (x sig2 / d^2 cut + cut'), g = exp(-x^2 sig2 / 2), x = 1/d - inv_mu
// (im, sg: its model's inverse centres and squared widths [nu]); g into gk where not null.
inline void pair_sensitivities(const PairGeometry& geo, const float* im, const float* sg, int64_t nu, float* sp,
                               float* dsp, float* gk) {
  for (int64_t k = 0; k < nu; ++k) {
    const float x = geo.inv_d - im[k];
    const float xs = x * sg[k];
    const float g = std::exp(-0.5f * x * xs);
    if (gk) gk[k] = g;
    sp[k] = g * geo.cut;
    dsp[k] = g * (xs * geo.inv_d2 * geo.cut + geo.dcut);
  }
}

// env row e [4, nu] += (1, sign u) s of one pair (sign -1: the pair seen from its second atom, r_ji = -r_ij).
inline void add_environment(float* e, const float* sp, const float* u, float sign, int64_t nu) {
  const float u0 = sign * u[0], u1 = sign * u[1], u2 = sign * u[2];
  for (int64_t k = 0; k < nu; ++k) {
    const float sv = sp[k];
    e[k] += sv; e[nu + k] += sv * u0; e[2 * nu + k] += sv * u1; e[3 * nu + k] += sv * u2;
  }
}

// s = g cut, ds = g (x sig2 / d^2 cut + cut'), g = exp(-x^2 sig2 / 2), x = 1/d - inv_mu; hippynn's CosCutoff
// cut = cos^2(pi d / 2 d_hard) inside d_hard; env[row] += (1, u) s. Also returns g [P, nu] and the pair geometry
// (1/d, 1/d^2, cut, cut') [P, 4], so that the backward recomputes neither the exponentials nor the cut-off; with
// keep false (no backward follows: evaluation, an exported model's force call) both are empty and never written.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> sens_env_forward(at::Tensor dist, at::Tensor unit, at::Tensor inv_mu,
                                            at::Tensor sig2, at::Tensor model, at::Tensor row,
                                            int64_t n_rows, double cutoff, bool keep) {
  check(dist, "dist", at::kFloat); check(unit, "unit", at::kFloat); check(inv_mu, "inv_mu", at::kFloat);
  check(sig2, "sig2", at::kFloat); check(model, "model", at::kLong); check(row, "row", at::kLong);
  const int64_t P = dist.size(0), nu = inv_mu.size(1);
  auto s = at::empty({P, nu}, dist.options());
  auto ds = at::empty({P, nu}, dist.options());
  auto env = at::zeros({n_rows, 4, nu}, dist.options());
  auto gs = at::empty({keep ? P : 0, nu}, dist.options());
  auto geos = at::empty({keep ? P : 0, 4}, dist.options());
  const float* d_ = dist.data_ptr<float>(); const float* u_ = unit.data_ptr<float>();
  const float* im_ = inv_mu.data_ptr<float>(); const float* sg_ = sig2.data_ptr<float>();
  const int64_t* m_ = (model.numel() ? model.data_ptr<int64_t>() : nullptr); const int64_t* r_ = row.data_ptr<int64_t>();
  float* s_ = s.data_ptr<float>(); float* ds_ = ds.data_ptr<float>(); float* e_ = env.data_ptr<float>();
  float* g_ = gs.data_ptr<float>(); float* geo_ = geos.data_ptr<float>();
  const float a = static_cast<float>(M_PI / 2.0 / cutoff);
  for (int64_t p = 0; p < P; ++p) {
    const PairGeometry geo(d_[p], a, static_cast<float>(cutoff));
    const float inv_d = geo.inv_d, inv_d2 = geo.inv_d2, cut = geo.cut, dcut = geo.dcut;
    float* gp = keep ? geo_ + 4 * p : nullptr;
    if (keep) { gp[0] = inv_d; gp[1] = inv_d2; gp[2] = cut; gp[3] = dcut; }
    const int64_t m = m_ ? m_[p] : 0;
    const float* im = im_ + m * nu; const float* sg = sg_ + m * nu;
    float* sp = s_ + p * nu; float* dsp = ds_ + p * nu; float* gpk = keep ? g_ + p * nu : nullptr;
    pair_sensitivities(geo, im, sg, nu, sp, dsp, gpk);
    add_environment(e_ + r_[p] * 4 * nu, sp, u_ + 3 * p, 1.0f, nu);
  }
  return {env, s, ds, gs, geos};
}

// The backward of sens_env_forward: grad_s_total = grad_s + sum_k grad_env[row, k] (1, u)_k, then through the
// sensitivities into inv_mu and sig2, summed per model (grad_inv_mu, grad_sig2 [M, nu]); g and the pair geometry
// are the forward's.
std::tuple<at::Tensor, at::Tensor> sens_env_backward(at::Tensor grad_env, at::Tensor grad_s, at::Tensor grad_ds,
                                             at::Tensor gs, at::Tensor geos, at::Tensor unit,
                                             at::Tensor inv_mu, at::Tensor sig2, at::Tensor model,
                                             at::Tensor row) {
  check(grad_env, "grad_env", at::kFloat); check(grad_s, "grad_s", at::kFloat);
  check(grad_ds, "grad_ds", at::kFloat); check(gs, "g", at::kFloat); check(geos, "geometry", at::kFloat);
  check(unit, "unit", at::kFloat); check(inv_mu, "inv_mu", at::kFloat); check(sig2, "sig2", at::kFloat);
  const int64_t P = gs.size(0), M = inv_mu.size(0), nu = inv_mu.size(1);
  // per-model sums in double: thousands of pairs per model
  auto gim = at::zeros({M, nu}, gs.options().dtype(at::kDouble));
  auto gsg = at::zeros({M, nu}, gs.options().dtype(at::kDouble));
  const float* ge_ = grad_env.data_ptr<float>(); const float* gs_ = grad_s.data_ptr<float>();
  const float* gds_ = grad_ds.data_ptr<float>(); const float* g_ = gs.data_ptr<float>();
  const float* geo_ = geos.data_ptr<float>();
  const float* u_ = unit.data_ptr<float>(); const float* im_ = inv_mu.data_ptr<float>();
  const float* sg_ = sig2.data_ptr<float>(); const int64_t* m_ = (model.numel() ? model.data_ptr<int64_t>() : nullptr);
  const int64_t* r_ = row.data_ptr<int64_t>();
  double* gim_ = gim.data_ptr<double>(); double* gsg_ = gsg.data_ptr<double>();
  for (int64_t p = 0; p < P; ++p) {
    const float* gp = geo_ + 4 * p;
    const float inv_d = gp[0], inv_d2 = gp[1], cut = gp[2], dcut = gp[3];
    const int64_t m = m_ ? m_[p] : 0;
    const float* im = im_ + m * nu; const float* sg = sg_ + m * nu;
    const float* ge = ge_ + r_[p] * 4 * nu;
    const float u0 = u_[3 * p], u1 = u_[3 * p + 1], u2 = u_[3 * p + 2];
    double* gim_m = gim_ + m * nu; double* gsg_m = gsg_ + m * nu;
    for (int64_t k = 0; k < nu; ++k) {
      const float gsv = gs_[p * nu + k] + ge[k] + ge[nu + k] * u0 + ge[2 * nu + k] * u1 + ge[3 * nu + k] * u2;
      const float gdsv = gds_[p * nu + k];
      const float x = inv_d - im[k];
      const float xs = x * sg[k];
      const float g = g_[p * nu + k];
      const float q = xs * inv_d2 * cut + dcut;
      const float through_g = (gsv * cut + gdsv * q) * g;
      const float direct = gdsv * g * inv_d2 * cut;
      const float grad_x = direct * sg[k] - xs * through_g;
      gim_m[k] -= grad_x;
      gsg_m[k] += direct * x - 0.5f * x * x * through_g;
    }
  }
  return {gim.to(at::kFloat), gsg.to(at::kFloat)};
}

// dE/dr of one pair (r = r_ij = d u): dE/ds = g0 + u . gv, dE/du = sum_nu gv s, dE/dr = (sum_nu dE/ds ds) u +
// (dE/du - (dE/du . u) u) / d, from g = dE/d(env) of its row [4, nu] and its s, ds [nu]; dE/ds into de (if not null).
inline void pair_gradient(const float* g, const float* sp, const float* dsp, const float* u, float d, int64_t nu,
                          float* de, float r[3]) {
  const float u0 = u[0], u1 = u[1], u2 = u[2];
  const float inv_d = 1.0f / d;
  float radial = 0.f, du0 = 0.f, du1 = 0.f, du2 = 0.f;
  for (int64_t k = 0; k < nu; ++k) {
    const float v = g[k] + u0 * g[nu + k] + u1 * g[2 * nu + k] + u2 * g[3 * nu + k];
    if (de) de[k] = v;
    radial += v * dsp[k];
    const float sv = sp[k];
    du0 += g[nu + k] * sv; du1 += g[2 * nu + k] * sv; du2 += g[3 * nu + k] * sv;
  }
  const float dot = du0 * u0 + du1 * u1 + du2 * u2;
  r[0] = radial * u0 + (du0 - dot * u0) * inv_d;
  r[1] = radial * u1 + (du1 - dot * u1) * inv_d;
  r[2] = radial * u2 + (du2 - dot * u2) * inv_d;
}

// Pair forces: dE/dr of each pair (pair_gradient), F[first] += dE/dr, F[second] -= dE/dr (g = g_rows[row],
// [4, nu]). Also returns dE/ds [P, nu] for the backward.
std::tuple<at::Tensor, at::Tensor> forces_forward(at::Tensor g_rows, at::Tensor s, at::Tensor ds,
                                                  at::Tensor dist, at::Tensor unit, at::Tensor row,
                                                  at::Tensor first, at::Tensor second, int64_t n_atoms) {
  check(g_rows, "g_rows", at::kFloat); check(s, "s", at::kFloat); check(ds, "ds", at::kFloat);
  const int64_t P = s.size(0), nu = s.size(1);
  auto F = at::zeros({n_atoms, 3}, s.options());
  auto dE_ds = at::empty({P, nu}, s.options());
  const float* g_ = g_rows.data_ptr<float>(); const float* s_ = s.data_ptr<float>();
  const float* ds_ = ds.data_ptr<float>(); const float* d_ = dist.data_ptr<float>();
  const float* u_ = unit.data_ptr<float>(); const int64_t* r_ = row.data_ptr<int64_t>();
  const int64_t* f_ = first.data_ptr<int64_t>(); const int64_t* sc_ = second.data_ptr<int64_t>();
  float* F_ = F.data_ptr<float>(); float* de_ = dE_ds.data_ptr<float>();
  for (int64_t p = 0; p < P; ++p) {
    float r[3];
    pair_gradient(g_ + r_[p] * 4 * nu, s_ + p * nu, ds_ + p * nu, u_ + 3 * p, d_[p], nu, de_ + p * nu, r);
    float* Fi = F_ + f_[p] * 3; float* Fj = F_ + sc_[p] * 3;
    Fi[0] += r[0]; Fi[1] += r[1]; Fi[2] += r[2];
    Fj[0] -= r[0]; Fj[1] -= r[1]; Fj[2] -= r[2];
  }
  return {F, dE_ds};
}

// The exported model's forces and virials (no backward: inference): forces as forces_forward; the virial
// sum_pairs -r_ij (x) dE/dr_ij (LAMMPS's sum r.f convention; summed in double), [3, 3]; with per_atom_virial
// half of each pair's term (xx, yy, zz, xy, xz, yz) to each of its two atoms, [n_atoms, 6], else [0, 6].
// One pair's force r = dE/dr_ij onto its atoms (F_i += r, F_j -= r), its virial -r_ij (x) r into w and, with
// per_atom_virial, half of it (Voigt) onto each atom's row of aw.
inline void add_pair_force(const float* r, const float* u, float d, int64_t i, int64_t j, float* F_, float* aw_,
                           double (&w)[3][3], bool per_atom_virial) {
  float* Fi = F_ + i * 3; float* Fj = F_ + j * 3;
  Fi[0] += r[0]; Fi[1] += r[1]; Fi[2] += r[2];
  Fj[0] -= r[0]; Fj[1] -= r[1]; Fj[2] -= r[2];
  const float v[3] = {d * u[0], d * u[1], d * u[2]};  // r_ij
  float pw[3][3];
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) {
      pw[a][b] = -v[a] * r[b];
      w[a][b] += pw[a][b];
    }
  if (per_atom_virial) {
    const float voigt[6] = {pw[0][0] * 0.5f, pw[1][1] * 0.5f, pw[2][2] * 0.5f,
                            pw[0][1] * 0.5f, pw[0][2] * 0.5f, pw[1][2] * 0.5f};
    float* Wi = aw_ + i * 6; float* Wj = aw_ + j * 6;
    for (int k = 0; k < 6; ++k) { Wi[k] += voigt[k]; Wj[k] += voigt[k]; }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> forces_virial(at::Tensor g_rows, at::Tensor s, at::Tensor ds,
                                                             at::Tensor dist, at::Tensor unit, at::Tensor row,
                                                             at::Tensor first, at::Tensor second, int64_t n_atoms,
                                                             bool per_atom_virial) {
  check(g_rows, "g_rows", at::kFloat); check(s, "s", at::kFloat); check(ds, "ds", at::kFloat);
  check(dist, "dist", at::kFloat); check(unit, "unit", at::kFloat); check(row, "row", at::kLong);
  check(first, "first", at::kLong); check(second, "second", at::kLong);
  const int64_t P = s.size(0), nu = s.size(1);
  auto F = at::zeros({n_atoms, 3}, s.options());
  auto atom_w = at::zeros({per_atom_virial ? n_atoms : 0, 6}, s.options());
  const float* g_ = g_rows.data_ptr<float>(); const float* s_ = s.data_ptr<float>();
  const float* ds_ = ds.data_ptr<float>(); const float* d_ = dist.data_ptr<float>();
  const float* u_ = unit.data_ptr<float>(); const int64_t* r_ = row.data_ptr<int64_t>();
  const int64_t* f_ = first.data_ptr<int64_t>(); const int64_t* sc_ = second.data_ptr<int64_t>();
  float* F_ = F.data_ptr<float>(); float* aw_ = atom_w.data_ptr<float>();
  double w[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  for (int64_t p = 0; p < P; ++p) {
    float r[3];
    pair_gradient(g_ + r_[p] * 4 * nu, s_ + p * nu, ds_ + p * nu, u_ + 3 * p, d_[p], nu, nullptr, r);
    add_pair_force(r, u_ + 3 * p, d_[p], f_[p], sc_[p], F_, aw_, w, per_atom_virial);
  }
  auto virial = at::empty({3, 3}, s.options());
  float* W = virial.data_ptr<float>();
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) W[3 * a + b] = static_cast<float>(w[a][b]);
  return {F, virial, atom_w};
}

// The exported model's pair geometry: r_ij = (x_j + shift) - x_i of positions[N,3] (shift [P,3], or [0,3] for
// none: LAMMPS's ghost atoms), dist = |r_ij| [P], unit = r_ij / dist [P,3], and each pair's environment row
// first x n_species + species of the second (species: the model's species index 0..n_species-1 of each atom);
// with row2 (the half list, below) also the row of the second atom, second x n_species + species of the first, where
// the second atom is one of the first n_local, else -1.
void pair_geometry_loop(const at::Tensor& positions, const at::Tensor& species, const at::Tensor& first,
                        const at::Tensor& second, const at::Tensor& shift, int64_t n_species, int64_t n_local,
                        at::Tensor& dist, at::Tensor& unit, at::Tensor& row, int64_t* r2_) {
  check(positions, "positions", at::kFloat); check(species, "species", at::kLong);
  check(first, "first", at::kLong); check(second, "second", at::kLong); check(shift, "shift", at::kFloat);
  const int64_t P = first.size(0), N = positions.size(0);
  TORCH_CHECK(second.size(0) == P && (shift.size(0) == P || shift.size(0) == 0), "pair arrays of unequal length");
  const float* x_ = positions.data_ptr<float>(); const int64_t* sp_ = species.data_ptr<int64_t>();
  const int64_t* f_ = first.data_ptr<int64_t>(); const int64_t* sc_ = second.data_ptr<int64_t>();
  const float* sh_ = shift.size(0) ? shift.data_ptr<float>() : nullptr;
  float* d_ = dist.data_ptr<float>(); float* u_ = unit.data_ptr<float>(); int64_t* r_ = row.data_ptr<int64_t>();
  for (int64_t p = 0; p < P; ++p) {
    const int64_t i = f_[p], j = sc_[p];
    TORCH_CHECK(i >= 0 && i < N && j >= 0 && j < N, "pair ", p, " names an atom outside 0..", N - 1);
    TORCH_CHECK(!r2_ || i < n_local, "half pair list: pair ", p, " has a ghost (", i, ") as its first atom");
    const float* xi = x_ + 3 * i; const float* xj = x_ + 3 * j;
    float v[3];
    for (int a = 0; a < 3; ++a) v[a] = (sh_ ? xj[a] + sh_[3 * p + a] : xj[a]) - xi[a];
    const float d = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    d_[p] = d;
    for (int a = 0; a < 3; ++a) u_[3 * p + a] = v[a] / d;
    r_[p] = n_species > 1 ? i * n_species + sp_[j] : i;
    if (r2_) r2_[p] = j < n_local ? (n_species > 1 ? j * n_species + sp_[i] : j) : -1;
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pair_geometry(at::Tensor positions, at::Tensor species,
                                                             at::Tensor first, at::Tensor second, at::Tensor shift,
                                                             int64_t n_species) {
  const int64_t P = first.size(0);
  auto dist = at::empty({P}, positions.options());
  auto unit = at::empty({P, 3}, positions.options());
  auto row = at::empty({P}, first.options());
  pair_geometry_loop(positions, species, first, second, shift, n_species, 0, dist, unit, row, nullptr);
  return {dist, unit, row};
}

// The backward of forces_forward: grad_rows [R, 4, nu], grad_s, grad_ds [P, nu] from grad_F [n_atoms, 3].
std::tuple<at::Tensor, at::Tensor, at::Tensor> forces_backward(at::Tensor grad_F, at::Tensor g_rows, at::Tensor s,
                                           at::Tensor ds, at::Tensor dE_ds, at::Tensor dist,
                                           at::Tensor unit, at::Tensor row, at::Tensor first,
                                           at::Tensor second) {
  check(grad_F, "grad_F", at::kFloat); check(g_rows, "g_rows", at::kFloat);
  const int64_t P = s.size(0), nu = s.size(1);
  auto grad_rows = at::zeros_like(g_rows);
  auto grad_s = at::empty({P, nu}, s.options());
  auto grad_ds = at::empty({P, nu}, s.options());
  const float* gF_ = grad_F.data_ptr<float>(); const float* g_ = g_rows.data_ptr<float>();
  const float* s_ = s.data_ptr<float>(); const float* ds_ = ds.data_ptr<float>();
  const float* de_ = dE_ds.data_ptr<float>(); const float* d_ = dist.data_ptr<float>();
  const float* u_ = unit.data_ptr<float>(); const int64_t* r_ = row.data_ptr<int64_t>();
  const int64_t* f_ = first.data_ptr<int64_t>(); const int64_t* sc_ = second.data_ptr<int64_t>();
  float* gr_ = grad_rows.data_ptr<float>(); float* gs_ = grad_s.data_ptr<float>();
  float* gds_ = grad_ds.data_ptr<float>();
  for (int64_t p = 0; p < P; ++p) {
    const float* gi = gF_ + f_[p] * 3; const float* gj = gF_ + sc_[p] * 3;
    const float gr0 = gi[0] - gj[0], gr1 = gi[1] - gj[1], gr2 = gi[2] - gj[2];
    const float u0 = u_[3 * p], u1 = u_[3 * p + 1], u2 = u_[3 * p + 2];
    const float inv_d = 1.0f / d_[p];
    const float grad_radial = gr0 * u0 + gr1 * u1 + gr2 * u2;
    const float t0 = (gr0 - grad_radial * u0) * inv_d;  // through the tangential term: d/d(dE/du)
    const float t1 = (gr1 - grad_radial * u1) * inv_d;
    const float t2 = (gr2 - grad_radial * u2) * inv_d;
    const float* g = g_ + r_[p] * 4 * nu;
    float* G = gr_ + r_[p] * 4 * nu;
    for (int64_t k = 0; k < nu; ++k) {
      const float gde = grad_radial * ds_[p * nu + k];  // d/d(dE/ds_k)
      gds_[p * nu + k] = grad_radial * de_[p * nu + k];
      gs_[p * nu + k] = t0 * g[nu + k] + t1 * g[2 * nu + k] + t2 * g[3 * nu + k];
      const float sv = s_[p * nu + k];
      G[k] += gde;
      G[nu + k] += u0 * gde + t0 * sv;
      G[2 * nu + k] += u1 * gde + t1 * sv;
      G[3 * nu + k] += u2 * gde + t2 * sv;
    }
  }
  return {grad_rows, grad_s, grad_ds};
}

// ---- The half pair list (the exported model's compute_half; LAMMPS's half neighbour list, newton off) ----
// Each pair of two of the first n_local atoms once (either order), each pair of one of them with another atom (a
// ghost: an image owned elsewhere, or by this domain across the periodic boundary) once, the local atom first. A
// pair of two local atoms adds to both atoms' environments (row: the first's, r_ij; row2: the second's, r_ji =
// -r_ij) and its dE/dr_ij is the sum of both; a pair with a ghost adds to the local atom's only (row2 = -1), the
// ghost's owner holds the same pair seen from its side. The sensitivities, cut-off and exponentials of a pair are
// evaluated once where the full list evaluates them twice; one interaction layer (the ghosts' environments are
// never needed).

// pair_geometry with row2 [P] (see pair_geometry_loop).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> pair_geometry_half(at::Tensor positions,
                                                                              at::Tensor species, at::Tensor first,
                                                                              at::Tensor second, at::Tensor shift,
                                                                              int64_t n_species, int64_t n_local) {
  const int64_t P = first.size(0);
  auto dist = at::empty({P}, positions.options());
  auto unit = at::empty({P, 3}, positions.options());
  auto row = at::empty({P}, first.options());
  auto row2 = at::empty({P}, first.options());
  pair_geometry_loop(positions, species, first, second, shift, n_species, n_local, dist, unit, row,
                     row2.data_ptr<int64_t>());
  return {dist, unit, row, row2};
}

// sens_env_forward (one model, no backward) over a half list: env[row] += (1, u) s, env[row2] += (1, -u) s.
std::tuple<at::Tensor, at::Tensor, at::Tensor> sens_env_half(at::Tensor dist, at::Tensor unit, at::Tensor inv_mu,
                                                             at::Tensor sig2, at::Tensor row, at::Tensor row2,
                                                             int64_t n_rows, double cutoff) {
  check(dist, "dist", at::kFloat); check(unit, "unit", at::kFloat); check(inv_mu, "inv_mu", at::kFloat);
  check(sig2, "sig2", at::kFloat); check(row, "row", at::kLong); check(row2, "row2", at::kLong);
  const int64_t P = dist.size(0), nu = inv_mu.size(1);
  TORCH_CHECK(inv_mu.size(0) == 1, "sens_env_half computes one model");
  auto s = at::empty({P, nu}, dist.options());
  auto ds = at::empty({P, nu}, dist.options());
  auto env = at::zeros({n_rows, 4, nu}, dist.options());
  const float* d_ = dist.data_ptr<float>(); const float* u_ = unit.data_ptr<float>();
  const float* im = inv_mu.data_ptr<float>(); const float* sg = sig2.data_ptr<float>();
  const int64_t* r_ = row.data_ptr<int64_t>(); const int64_t* r2_ = row2.data_ptr<int64_t>();
  float* s_ = s.data_ptr<float>(); float* ds_ = ds.data_ptr<float>(); float* e_ = env.data_ptr<float>();
  const float a = static_cast<float>(M_PI / 2.0 / cutoff);
  for (int64_t p = 0; p < P; ++p) {
    const PairGeometry geo(d_[p], a, static_cast<float>(cutoff));
    float* sp = s_ + p * nu;
    pair_sensitivities(geo, im, sg, nu, sp, ds_ + p * nu, nullptr);
    add_environment(e_ + r_[p] * 4 * nu, sp, u_ + 3 * p, 1.0f, nu);
    if (r2_[p] >= 0) add_environment(e_ + r2_[p] * 4 * nu, sp, u_ + 3 * p, -1.0f, nu);
  }
  return {env, s, ds};
}

// forces_virial over a half list: dE/dr_ij = pair_gradient(g[row], u) - pair_gradient(g[row2], -u) (the second
// term: the second atom's environment depends on r_ji = -r_ij; absent where row2 = -1); forces, virial and per-atom
// virial (half of each pair's term to each of its atoms) from it as forces_virial does.
std::tuple<at::Tensor, at::Tensor, at::Tensor> forces_virial_half(at::Tensor g_rows, at::Tensor s, at::Tensor ds,
                                                                  at::Tensor dist, at::Tensor unit, at::Tensor row,
                                                                  at::Tensor row2, at::Tensor first,
                                                                  at::Tensor second, int64_t n_atoms,
                                                                  bool per_atom_virial) {
  check(g_rows, "g_rows", at::kFloat); check(s, "s", at::kFloat); check(ds, "ds", at::kFloat);
  check(dist, "dist", at::kFloat); check(unit, "unit", at::kFloat); check(row, "row", at::kLong);
  check(row2, "row2", at::kLong); check(first, "first", at::kLong); check(second, "second", at::kLong);
  const int64_t P = s.size(0), nu = s.size(1);
  auto F = at::zeros({n_atoms, 3}, s.options());
  auto atom_w = at::zeros({per_atom_virial ? n_atoms : 0, 6}, s.options());
  const float* g_ = g_rows.data_ptr<float>(); const float* s_ = s.data_ptr<float>();
  const float* ds_ = ds.data_ptr<float>(); const float* d_ = dist.data_ptr<float>();
  const float* u_ = unit.data_ptr<float>(); const int64_t* r_ = row.data_ptr<int64_t>();
  const int64_t* r2_ = row2.data_ptr<int64_t>();
  const int64_t* f_ = first.data_ptr<int64_t>(); const int64_t* sc_ = second.data_ptr<int64_t>();
  float* F_ = F.data_ptr<float>(); float* aw_ = atom_w.data_ptr<float>();
  double w[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  for (int64_t p = 0; p < P; ++p) {
    const float* u = u_ + 3 * p;
    float r[3];
    pair_gradient(g_ + r_[p] * 4 * nu, s_ + p * nu, ds_ + p * nu, u, d_[p], nu, nullptr, r);
    if (r2_[p] >= 0) {
      const float back[3] = {-u[0], -u[1], -u[2]};
      float r2[3];
      pair_gradient(g_ + r2_[p] * 4 * nu, s_ + p * nu, ds_ + p * nu, back, d_[p], nu, nullptr, r2);
      r[0] -= r2[0]; r[1] -= r2[1]; r[2] -= r2[2];
    }
    add_pair_force(r, u, d_[p], f_[p], sc_[p], F_, aw_, w, per_atom_virial);
  }
  auto virial = at::empty({3, 3}, s.options());
  float* W = virial.data_ptr<float>();
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) W[3 * a + b] = static_cast<float>(w[a][b]);
  return {F, virial, atom_w};
}

}  // namespace

// torch.ops.tsmlip.*: the training engine (through the autograd Functions of tsmlip.core.pair_kernels) and the
// exported model (pair_geometry, sens_env_forward, forces_virial: its compute; pair_geometry_half, sens_env_half,
// forces_virial_half: its compute_half) call them by these names.
TORCH_LIBRARY(tsmlip, m) {
  m.def("sens_env_forward", &sens_env_forward);
  m.def("sens_env_backward", &sens_env_backward);
  m.def("forces_forward", &forces_forward);
  m.def("forces_backward", &forces_backward);
  m.def("forces_virial", &forces_virial);
  m.def("pair_geometry", &pair_geometry);
  m.def("pair_geometry_half", &pair_geometry_half);
  m.def("sens_env_half", &sens_env_half);
  m.def("forces_virial_half", &forces_virial_half);
}
