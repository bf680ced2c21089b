/* pair_style tsmlip <model.ts> [device cpu|cuda] [list auto|half|full]
   pair_coeff * * <element or Z for type 1> <... for type 2> ...

   The model (written by `tsmlip export`) maps (positions, atomic numbers, full pair list, n_local) to per-atom
   energies; its `compute` method returns the energy of the local atoms, the forces -dE/dx on every atom (local
   and ghost) and the virial sum_pairs -r_ij (x) dE/dr_ij (LAMMPS's sum r.f convention). Message passing over
   n_interactions layers makes a local atom's energy depend on atoms up to n_interactions * cutoff away: the
   ghost shell (comm cutoff) is raised to that, and with more than one layer the ghost atoms' own neighbours
   enter the graph (a full neighbour list with ghosts). Forces on ghosts are added to their owners by LAMMPS's
   reverse communication (newton pair on, required). Units: metal (eV, Angstrom).

   With one layer (list auto, the default, or half) the plugin asks for a half neighbour list as with newton off
   (each pair of two local atoms once, each pair of a local atom with a ghost once, here and on the ghost's owner)
   and calls the model's compute_half: each pair's sensitivities once, into both local atoms' environments
   (tsmlip.core.export). list full: the full list and compute (as before compute_half existed; a file written
   before then gets it too).

   A committee file (`tsmlip export --model a.pt b.pt ...`: n_members >= 2, method compute_committee): the forces,
   energies and virials are the members' means, and each step the members' own forces on every atom (ghosts
   included) are reverse-communicated (3 x n_members values per atom) so that each local atom holds its members'
   full forces, on any number of ranks and with either list; from them DeePMD's per-atom force deviation
   eps_i = sqrt(<|F_i - <F_i>|^2>) (mean over the members). Per atom: extract_peratom("deviation") (fix pair ...
   tsmlip deviation 0; "member_forces", 3 x n_members columns, likewise); global: pvector (compute pair tsmlip) =
   [max_i eps_i, mean_i eps_i, the members' energy standard deviation per atom], summed over ranks by compute pair,
   so rank 0 holds the values and the others zeros. */

#include "pair_tsmlip.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include <torch/cuda.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <dlfcn.h>
#include <cstdlib>

using namespace LAMMPS_NS;

static const char *const SYMBOLS[] = {
    "X",  "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si", "P",  "S",
    "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn",
    "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho",
    "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",  "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po",
    "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U",  "Np", "Pu"};
static const int N_SYMBOLS = sizeof(SYMBOLS) / sizeof(SYMBOLS[0]);

/* The fused pair loops as torch operators (tsmlip::*, workflow/tsmlip/core/pair_kernels.cpp built as
   tsmlip_ops.so beside this plugin, or the file the environment variable TSMLIP_OPS names; TSMLIP_OPS=none: not
   loaded), loaded once per process unless the process has them already (a Python process that built them).
   Returns "" when they are there, else why not. */
static std::string load_tsmlip_ops()
{
  if (c10::Dispatcher::singleton().findSchema({"tsmlip::sens_env_forward", ""}).has_value()) return "";
  std::string path;
  const char *env = std::getenv("TSMLIP_OPS");
  if (env && *env) {
    if (strcmp(env, "none") == 0) return "TSMLIP_OPS=none";
    path = env;
  } else {
    Dl_info info;
    if (!dladdr((void *) &load_tsmlip_ops, &info) || !info.dli_fname) return "the plugin's folder is unknown";
    path = info.dli_fname;
    path = path.substr(0, path.find_last_of('/') + 1) + "tsmlip_ops.so";
  }
  if (!dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
    const char *why = dlerror();
    return "cannot load " + path + ": " + (why ? why : "?");
  }
  return "";
}

PairTsmlip::PairTsmlip(LAMMPS *lmp) :
    Pair(lmp), device(torch::kCPU), dtype(torch::kFloat32), cutoff(0.0), n_interactions(1), list_choice(-1),
    half_list(false), n_members(0), nmax_committee(0), member_f(nullptr), deviation(nullptr)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;    // the virial comes from the pair gradients (equal to fdotr, cheaper)
  centroidstressflag = CENTROID_NOTAVAIL;
}

PairTsmlip::~PairTsmlip()
{
  memory->destroy(member_f);
  memory->destroy(deviation);
  delete[] pvector;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

void PairTsmlip::allocate()
{
  allocated = 1;
  int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  memory->create(cutghost, n + 1, n + 1, "pair:cutghost");
  for (int i = 1; i <= n; i++)
    for (int j = i; j <= n; j++) setflag[i][j] = 0;
}

void PairTsmlip::settings(int narg, char **arg)
{
  if (narg < 1 || narg % 2 != 1)
    error->all(FLERR, "Illegal pair_style tsmlip command: pair_style tsmlip <model.ts> [device cpu|cuda] "
               "[list auto|half|full]");
  model_file = arg[0];
  list_choice = -1;
  for (int k = 1; k < narg; k += 2) {
    if (strcmp(arg[k], "device") == 0) {
      if (strcmp(arg[k + 1], "cuda") == 0) {
        if (!torch::cuda::is_available())
          error->all(FLERR, "pair_style tsmlip: device cuda requested but libtorch sees no CUDA device");
        device = torch::Device(torch::kCUDA);
      } else if (strcmp(arg[k + 1], "cpu") == 0) {
        device = torch::Device(torch::kCPU);
      } else {
        error->all(FLERR, "pair_style tsmlip: unknown device {} (cpu or cuda)", arg[k + 1]);
      }
    } else if (strcmp(arg[k], "list") == 0) {
      if (strcmp(arg[k + 1], "auto") == 0) list_choice = -1;
      else if (strcmp(arg[k + 1], "full") == 0) list_choice = 0;
      else if (strcmp(arg[k + 1], "half") == 0) list_choice = 1;
      else error->all(FLERR, "pair_style tsmlip: unknown list {} (auto, half or full)", arg[k + 1]);
    } else {
      error->all(FLERR, "Illegal pair_style tsmlip keyword {}: device cpu|cuda or list auto|half|full", arg[k]);
    }
  }
  // an export with the fused pair loops (tsmlip export --kernels cpp|auto) calls torch.ops.tsmlip.*: they must be
  // registered before the model is read; a plain export (--kernels torch) runs without them
  const std::string ops_missing = load_tsmlip_ops();
  std::unordered_map<std::string, std::string> extra{{"tsmlip.json", ""}};
  try {
    model = torch::jit::load(model_file, device, extra);
  } catch (const std::exception &e) {    // c10::Error, or TorchScript's unknown-operator error
    if (!ops_missing.empty() && std::string(e.what()).find("tsmlip::") != std::string::npos)
      error->all(FLERR, "pair_style tsmlip: {} calls the fused pair loops (tsmlip_ops.so), not loaded here ({}); "
                 "build them with make lammps, or export with tsmlip export --kernels torch", model_file,
                 ops_missing);
    error->all(FLERR, "pair_style tsmlip: cannot load {} as TorchScript (write it with tsmlip export)",
               model_file);
  }
  if (extra["tsmlip.json"].find("tsmlip-export/") == std::string::npos)
    error->all(FLERR, "pair_style tsmlip: {} is not an exported tsmlip model (tsmlip export writes one)",
               model_file);
  model.eval();
  cutoff = model.attr("cutoff").toDouble();
  n_interactions = (int) model.attr("n_interactions").toInt();
  known_z.clear();
  for (const auto &z : model.attr("species_list").toList()) known_z.push_back(z.get().toInt());
  // the weights' dtype (float32 as trained, or float64 if exported so)
  for (const auto &p : model.parameters()) {
    dtype = p.scalar_type();
    break;
  }
  ghostneigh = n_interactions > 1 ? 1 : 0;
  // the half list needs one interaction layer (the ghosts' environments are never needed) and compute_half
  const bool can_half = n_interactions == 1 && model.find_method("compute_half").has_value();
  if (list_choice == 1 && !can_half)
    error->all(FLERR, "pair_style tsmlip: list half needs a model with one interaction layer exported with "
               "compute_half (this one: {} layers{}); use list full or auto", n_interactions,
               model.find_method("compute_half").has_value() ? "" : ", no compute_half: export it again");
  half_list = list_choice == 0 ? false : can_half;
  // a committee: its members' forces for the deviation (reverse comm of 3 per member), three global values
  n_members = 0;
  if (model.hasattr("n_members") && model.find_method("compute_committee").has_value())
    n_members = (int) model.attr("n_members").toInt();
  comm_reverse = 3 * n_members;
  delete[] pvector;
  pvector = nullptr;
  nextra = n_members > 0 ? 3 : 0;
  if (nextra) pvector = new double[nextra]();
}

void PairTsmlip::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  int ntypes = atom->ntypes;
  if (narg != 2 + ntypes)
    error->all(FLERR, "pair_coeff * * needs one element (symbol or atomic number) per atom type ({} types)",
               ntypes);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_style tsmlip takes one pair_coeff * * <element per type>");
  type2z.assign(ntypes + 1, 0);
  for (int t = 1; t <= ntypes; t++) {
    const char *name = arg[1 + t];
    int z = 0;
    for (int k = 1; k < N_SYMBOLS; k++)
      if (strcmp(name, SYMBOLS[k]) == 0) z = k;
    if (z == 0 && utils::is_integer(name)) z = utils::inumeric(FLERR, name, false, lmp);
    bool known = false;
    for (auto kz : known_z) known = known || (kz == z);
    if (!known) {
      std::string list;
      for (auto kz : known_z) list += std::string(" ") + (kz < N_SYMBOLS ? SYMBOLS[kz] : std::to_string(kz));
      error->all(FLERR, "pair_coeff: element {} of type {} is not one the model was trained on:{}", name, t,
                 list);
    }
    type2z[t] = z;
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
}

void PairTsmlip::init_style()
{
  if (force->newton_pair == 0)
    error->all(FLERR, "pair_style tsmlip requires newton pair on (ghost forces are reverse-communicated)");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style tsmlip requires units metal (eV, Angstrom)");
  int flags = NeighConst::REQ_FULL;
  if (ghostneigh) flags |= NeighConst::REQ_GHOST;
  // the half list as with newton off: a pair with a ghost is listed here and on the ghost's owner, each side adds
  // it to its own atom's environment (the forces on ghosts still go to their owners: newton pair on)
  if (half_list) flags = NeighConst::REQ_DEFAULT | NeighConst::REQ_NEWTON_OFF;
  neighbor->add_request(this, flags);
  if (comm->me == 0)
    utils::logmesg(lmp, "pair_style tsmlip: {} neighbour list ({}, {} interaction layer{})\n",
                   half_list ? "half" : "full", half_list ? "compute_half" : "compute", n_interactions,
                   n_interactions == 1 ? "" : "s");
  if (comm->me == 0 && n_members > 0)
    utils::logmesg(lmp, "pair_style tsmlip: a committee of {} members (their mean; per-atom force deviation: "
                   "fix pair N tsmlip deviation 0; max, mean and energy spread: compute pair tsmlip)\n",
                   n_members);
  // a local atom's energy depends on atoms up to n_interactions * cutoff away: that many ghosts are needed
  double shell = n_interactions * cutoff + neighbor->skin;
  if (comm->cutghostuser < shell) comm->cutghostuser = shell;
}

double PairTsmlip::init_one(int i, int j)
{
  cutghost[i][j] = cutghost[j][i] = cutoff;
  return cutoff;
}

void PairTsmlip::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  double **x = atom->x;
  double **f = atom->f;
  int *type = atom->type;
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int ni = list->inum + (ghostneigh ? list->gnum : 0);
  const double cutsq_model = cutoff * cutoff;

  pi.clear();
  pj.clear();
  for (int ii = 0; ii < ni; ii++) {
    const int i = list->ilist[ii];
    const int *jlist = list->firstneigh[i];
    const int jnum = list->numneigh[i];
    const double xi0 = x[i][0], xi1 = x[i][1], xi2 = x[i][2];
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - xi0, dy = x[j][1] - xi1, dz = x[j][2] - xi2;
      if (dx * dx + dy * dy + dz * dz < cutsq_model) {
        pi.push_back(i);
        pj.push_back(j);
      }
    }
  }
  pos.resize((size_t) nall * 3);
  species.resize(nall);
  for (int i = 0; i < nall; i++) {
    pos[3 * i] = x[i][0];
    pos[3 * i + 1] = x[i][1];
    pos[3 * i + 2] = x[i][2];
    species[i] = type2z[type[i]];
  }
  const int64_t np = (int64_t) pi.size();
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  auto tpos = torch::from_blob(pos.data(), {nall, 3}, torch::TensorOptions().dtype(torch::kFloat64))
                  .to(device, dtype);
  auto tspec = torch::from_blob(species.data(), {nall}, i64).to(device);
  auto tpi = torch::from_blob(pi.data(), {np}, i64).to(device);
  auto tpj = torch::from_blob(pj.data(), {np}, i64).to(device);
  // the half list's compute_half takes no shifts ([0, 3]: the ghosts are explicit atoms); compute takes zeros
  auto tshift = torch::zeros({half_list ? 0 : np, 3}, torch::TensorOptions().dtype(dtype).device(device));

  std::vector<torch::jit::IValue> args{tpos, tspec, tpi, tpj, tshift, (int64_t) nlocal, (bool) vflag_atom};
  c10::intrusive_ptr<c10::ivalue::Tuple> out;
  if (n_members > 0) {    // the members' means, then their energies and forces (the deviation, below)
    args.emplace_back((bool) half_list);
    out = model.get_method("compute_committee")(args).toTuple();
  } else {
    out = model.get_method(half_list ? "compute_half" : "compute")(args).toTuple();
  }
  auto energy = out->elements()[0].toTensor().to(torch::kCPU, torch::kFloat64);
  auto atom_e = out->elements()[1].toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
  auto forces = out->elements()[2].toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
  auto w = out->elements()[3].toTensor().to(torch::kCPU, torch::kFloat64).contiguous();

  auto fa = forces.accessor<double, 2>();
  for (int i = 0; i < nall; i++) {
    f[i][0] += fa[i][0];
    f[i][1] += fa[i][1];
    f[i][2] += fa[i][2];
  }
  if (eflag_global) eng_vdwl += energy.item<double>();
  if (eflag_atom) {
    auto ea = atom_e.accessor<double, 1>();
    for (int i = 0; i < nlocal; i++) eatom[i] += ea[i];
  }
  if (vflag_global) {
    auto wa = w.accessor<double, 2>();
    virial[0] += wa[0][0];
    virial[1] += wa[1][1];
    virial[2] += wa[2][2];
    virial[3] += wa[0][1];
    virial[4] += wa[0][2];
    virial[5] += wa[1][2];
  }
  if (vflag_atom) {
    auto av = out->elements()[4].toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
    auto va = av.accessor<double, 2>();
    for (int i = 0; i < nall; i++)
      for (int k = 0; k < 6; k++) vatom[i][k] += va[i][k];
  }
  if (n_members > 0) committee_deviation(out->elements()[6].toTensor(), out->elements()[5].toTensor(), nlocal, nall);
}

/* The committee's per-atom force deviation: the members' forces on every atom (M, nall, 3) into member_f, the
   ghosts' rows added to their owners (reverse communication, as LAMMPS does with f), then on each local atom
   eps_i = sqrt(mean_m |F_i^m - <F_i>|^2); the global max and mean over all atoms and the members' energy standard
   deviation (population, over M) per atom into pvector on rank 0 (compute pair sums pvector over the ranks). */
void PairTsmlip::committee_deviation(const torch::Tensor &member_forces, const torch::Tensor &member_energies,
                                     int nlocal, int nall)
{
  const int m_count = n_members;
  if (atom->nmax > nmax_committee) {
    nmax_committee = atom->nmax;
    memory->destroy(member_f);
    memory->destroy(deviation);
    memory->create(member_f, nmax_committee, 3 * m_count, "pair:member_f");
    memory->create(deviation, nmax_committee, "pair:deviation");
  }
  auto mf = member_forces.to(torch::kCPU, torch::kFloat64).contiguous();
  auto fa = mf.accessor<double, 3>();
  for (int i = 0; i < nall; i++)
    for (int m = 0; m < m_count; m++)
      for (int c = 0; c < 3; c++) member_f[i][3 * m + c] = fa[m][i][c];
  comm->reverse_comm(this);

  double local[2] = {0.0, 0.0};    // max and sum of eps_i over this rank's atoms
  for (int i = 0; i < nlocal; i++) {
    double mean[3] = {0.0, 0.0, 0.0};
    for (int m = 0; m < m_count; m++)
      for (int c = 0; c < 3; c++) mean[c] += member_f[i][3 * m + c];
    for (int c = 0; c < 3; c++) mean[c] /= m_count;
    double sq = 0.0;
    for (int m = 0; m < m_count; m++)
      for (int c = 0; c < 3; c++) {
        const double d = member_f[i][3 * m + c] - mean[c];
        sq += d * d;
      }
    deviation[i] = std::sqrt(sq / m_count);
    local[0] = std::max(local[0], deviation[i]);
    local[1] += deviation[i];
  }
  double max_all = 0.0, sum_all = 0.0;
  MPI_Allreduce(&local[0], &max_all, 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(&local[1], &sum_all, 1, MPI_DOUBLE, MPI_SUM, world);
  // the members' energies of this rank's atoms, summed over the ranks
  auto me_cpu = member_energies.to(torch::kCPU, torch::kFloat64).contiguous();
  std::vector<double> e_local(me_cpu.data_ptr<double>(), me_cpu.data_ptr<double>() + m_count), e_all(m_count);
  MPI_Allreduce(e_local.data(), e_all.data(), m_count, MPI_DOUBLE, MPI_SUM, world);
  double e_mean = 0.0, e_var = 0.0;
  for (double e : e_all) e_mean += e / m_count;
  for (double e : e_all) e_var += (e - e_mean) * (e - e_mean) / m_count;
  const double natoms = atom->natoms > 0 ? (double) atom->natoms : 1.0;
  const bool root = comm->me == 0;
  pvector[0] = root ? max_all : 0.0;
  pvector[1] = root ? sum_all / natoms : 0.0;
  pvector[2] = root ? std::sqrt(e_var) / natoms : 0.0;
}

int PairTsmlip::pack_reverse_comm(int n, int first, double *buf)
{
  const int w = 3 * n_members;
  int k = 0;
  for (int i = first; i < first + n; i++)
    for (int c = 0; c < w; c++) buf[k++] = member_f[i][c];
  return k;
}

void PairTsmlip::unpack_reverse_comm(int n, int *list, double *buf)
{
  const int w = 3 * n_members;
  int k = 0;
  for (int i = 0; i < n; i++)
    for (int c = 0; c < w; c++) member_f[list[i]][c] += buf[k++];
}

/* per-atom values for fix pair: "deviation" (eps_i, eV/A, one column) and "member_forces" (each member's force,
   3 x n_members columns: fx fy fz of member 1, then member 2, ...); a committee file only */
void *PairTsmlip::extract_peratom(const char *name, int &ncol)
{
  if (n_members == 0) return nullptr;
  if (strcmp(name, "deviation") == 0) {
    ncol = 0;
    return (void *) deviation;
  }
  if (strcmp(name, "member_forces") == 0) {
    ncol = 3 * n_members;
    return (void *) member_f;
  }
  return nullptr;
}

double PairTsmlip::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) nmax_committee * (3 * n_members + 1) * sizeof(double);
  return bytes;
}

