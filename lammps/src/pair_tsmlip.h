/* pair_style tsmlip: a tsmlip student/teacher exported with `tsmlip export` (TorchScript), see docs/deploy.md.
   One interaction layer: a half neighbour list built as with newton off (each pair of two local atoms once, each
   pair with a ghost once), the model's compute_half; more layers (or a file without compute_half): a full list
   (with the ghosts' neighbours for more than one layer), its compute. Local + ghost atoms, newton pair on (the
   forces on ghost atoms are reverse-communicated to their owners). Energy = sum of the local atoms' energies;
   virial from the pair gradients. A committee file (tsmlip export with several models): the members' mean, and
   DeePMD's per-atom force deviation of the members (extract_peratom "deviation" for fix pair; its max and mean over
   the atoms and the energy spread per atom as pvector for compute pair). */
#ifndef LMP_PAIR_TSMLIP_H
#define LMP_PAIR_TSMLIP_H

#include "pair.h"

#include <torch/script.h>

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairTsmlip : public Pair {
 public:
  PairTsmlip(class LAMMPS *);
  ~PairTsmlip() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;
  void *extract_peratom(const char *, int &) override;
  double memory_usage() override;

 protected:
  void allocate();
  torch::jit::script::Module model;
  torch::Device device;
  torch::Dtype dtype;
  std::string model_file;
  double cutoff;            // the model's dist_hard_max (Angstrom)
  int n_interactions;       // message-passing layers: ghost shell needed = n_interactions * cutoff
  std::vector<int64_t> type2z;    // LAMMPS atom type -> atomic number
  std::vector<int64_t> known_z;   // atomic numbers the model was trained on
  int list_choice;          // pair_style keyword list: -1 auto (half where the model has compute_half), 0 full, 1 half
  bool half_list;           // this model runs from a half neighbour list (newton off) through compute_half
  // kept between steps (their capacity): the pair list, positions and species handed to the model
  std::vector<int64_t> pi, pj, species;
  std::vector<double> pos;
  // a committee file (compute_committee): n_members >= 2, else 0 (one model)
  int n_members;
  int nmax_committee;       // rows allocated in member_f and deviation
  double **member_f;        // [nmax][3 * n_members] each member's forces; the ghosts' added to their owners
  double *deviation;        // [nmax] per-atom force deviation eps_i of the local atoms (eV/A)
  void committee_deviation(const torch::Tensor &member_forces, const torch::Tensor &member_energies, int nlocal,
                           int nall);
};

}    // namespace LAMMPS_NS

#endif
