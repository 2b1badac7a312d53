/* Replays fuzz inputs (the seed corpus and every crash the fuzzer ever found,
 * tests/fuzz/regressions) through the fuzz target in the ordinary build, so
 * the sanitizer run of the suite keeps them fixed without clang. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
  int n = 0;
  for (int i = 1; i < argc; i++) {
    DIR *d = opendir(argv[i]);
    if (d == NULL) {
      fprintf(stderr, "cannot open %s\n", argv[i]);
      return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      char path[4096];
      snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
      FILE *f = fopen(path, "rb");
      static uint8_t buf[1 << 20];
      size_t len = f ? fread(buf, 1, sizeof(buf), f) : 0;
      if (f)
        fclose(f);
      LLVMFuzzerTestOneInput(buf, len);
      printf("replayed %s (%zu bytes)\n", path, len);
      n++;
    }
    closedir(d);
  }
  printf("%d inputs replayed\n", n);
  return n > 0 ? 0 : 1;
}
