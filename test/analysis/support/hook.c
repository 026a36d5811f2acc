#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile int stop;
static void **slot;

__attribute__((noinline)) int my_puts(const char *s) { (void)s; return 1; }

/* Find the main program's GOT slot for puts through its dynamic section (glibc has relocated the
   d_ptr values in memory on x86-64). */
static int find_slot(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size; (void)data;
  if (info->dlpi_name && info->dlpi_name[0]) return 0;
  const ElfW(Dyn) *dyn = 0;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) dyn = (const void *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
  if (!dyn) return 1;
  const ElfW(Rela) *tabs[2] = {0, 0};
  size_t sizes[2] = {0, 0};
  const ElfW(Sym) *symtab = 0;
  const char *strtab = 0;
  for (; dyn->d_tag != DT_NULL; dyn++) {
    switch (dyn->d_tag) {
    case DT_JMPREL: tabs[0] = (const void *)dyn->d_un.d_ptr; break;
    case DT_PLTRELSZ: sizes[0] = dyn->d_un.d_val; break;
    case DT_RELA: tabs[1] = (const void *)dyn->d_un.d_ptr; break;
    case DT_RELASZ: sizes[1] = dyn->d_un.d_val; break;
    case DT_SYMTAB: symtab = (const void *)dyn->d_un.d_ptr; break;
    case DT_STRTAB: strtab = (const void *)dyn->d_un.d_ptr; break;
    }
  }
  for (int t = 0; t < 2; t++) {
    if (!tabs[t] || !symtab || !strtab) continue;
    for (size_t i = 0; i < sizes[t] / sizeof(ElfW(Rela)); i++) {
      const ElfW(Rela) *r = &tabs[t][i];
      unsigned type = ELF64_R_TYPE(r->r_info);
      if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
      if (!strcmp(strtab + symtab[ELF64_R_SYM(r->r_info)].st_name, "puts")) {
        slot = (void **)(info->dlpi_addr + r->r_offset);
        return 1;
      }
    }
  }
  return 1;
}

int main(int argc, char **argv) {
  puts("hello"); /* binds puts (lazily or not) */
  fflush(stdout);
  dl_iterate_phdr(find_slot, 0);
  void *target = 0;
  if (argc > 1 && slot) {
    if (!strcmp(argv[1], "hook")) target = (void *)my_puts;
    else if (!strcmp(argv[1], "hook-libc")) target = (void *)&printf;
    else if (!strcmp(argv[1], "hook-anon")) {
      unsigned char *p = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      p[0] = 0x31; p[1] = 0xc0; p[2] = 0xc3; /* xor eax,eax; ret */
      target = p;
    }
    else if (!strcmp(argv[1], "patch") || !strcmp(argv[1], "patch-libc")) {
      /* Inline patch: overwrite the first bytes of a function with `mov $1,%eax; ret`. */
      unsigned char *code = !strcmp(argv[1], "patch") ? (unsigned char *)my_puts + 2 : (unsigned char *)dlsym(RTLD_DEFAULT, "puts") + 4;
      uintptr_t page = (uintptr_t)code & ~(uintptr_t)4095;
      mprotect((void *)page, 8192, PROT_READ | PROT_WRITE | PROT_EXEC);
      static const unsigned char stub[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3};
      memcpy(code, stub, sizeof stub);
      mprotect((void *)page, 8192, PROT_READ | PROT_EXEC);
      slot = (void **)code;
    }
    if (target) {
      uintptr_t page = (uintptr_t)slot & ~(uintptr_t)4095;
      mprotect((void *)page, 4096, PROT_READ | PROT_WRITE);
      *slot = target;
    }
  }
  char buf[128];
  int n = snprintf(buf, sizeof buf, "ready %p %p\n", (void *)slot, target);
  write(1, buf, n);
  while (!stop) pause();
  return 0;
}
