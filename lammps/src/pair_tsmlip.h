/* pair_style tsmlip: a tsmlip student/teacher exported with `tsmlip export` (TorchScript), see docs/deploy.md.
   Full neighbour list, local + ghost atoms, newton pair on (the forces on ghost atoms are reverse-communicated
   to their owners). Energy = sum of the local atoms' energies; virial from the pair gradients. */
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
};

}    // namespace LAMMPS_NS

#endif
