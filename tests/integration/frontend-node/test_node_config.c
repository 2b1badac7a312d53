/* gdx-node --check-config (frontend-node/main.c) refuses a bad
 * configuration with exit status 3 and a message naming the key and what
 * is wrong: the node's own settings, each adapter kind's resource settings
 * and the subscriptions. One table of cases: the file, and what the
 * message must say. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_node_config_errors(void **state) {
  (void)state;
  static const struct {
    const char *text, *expect;
  } cases[] = {
      {"node = { unit = \"X\"; id = \"y\"; };\nresources = ( { name = \"a\"; kind = \"api\"; "
       "base_url = \"ftp://x\"; } );\n",
       "resources.a.base_url: must start with http:// or https://"},
      {"node = { unit = \"X\"; id = \"y\"; };\nresources = ( { name = \"a\"; kind = \"tape\"; } );\n",
       "resources[0].kind: \"tape\" is not a kind this node knows"},
      {"node = { unit = \"X\"; id = \"y\"; };\nresources = ( { name = \"a\"; kind = \"api\"; "
       "base_url = \"http://x\"; headers = [\"bad header\"]; } );\n",
       "resources.a.headers[0]: must be \"Name: value\""},
      {"node = { unit = \"X\"; id = \"y\"; };\nlisten = { port = 70000; };\n",
       "listen.port: must be an integer from 0 to 65535"},
      {"node = { id = \"y\"; };\n", "node.unit: required key is missing"},
      {"node = { unit = \"X\"; id = \"y\"; };\nresources = ( { name = \"t\"; kind = \"table\"; "
       "table = \"a`b\"; } );\n",
       "resources.t.table: \"a`b\" is not a plain table name"},
      {"node = { unit = \"X\"; id = \"y\"; };\nresources = ( { name = \"t\"; kind = \"table\"; "
       "table = \"a\"; capture = \"binlog\"; } );\n",
       "resources.t.capture: \"triggers\" or \"timestamp\""},
      {"node = { unit = \"X\"; id = \"y\"; };\nsubscriptions = ( { authorization = 5; "
       "table = \"a\"; } );\n",
       "a table subscription needs frontdb.name"},
      {"node = { unit = \"X\"; id = \"y\"; };\nsubscriptions = ( { authorization = 5; "
       "folder = \"in\"; } );\n",
       "subscriptions[0]: a folder subscription has authorization (the id, a number) and "
       "folder (an absolute path)"},
      {"node = { unit = \"X\"; id = \"y\"; };\nscan = { enabled = false; };\n"
       "subscriptions = ( { authorization = 5; folder = \"/tmp/in\"; versions = -1; } );\n",
       "subscriptions[0].versions: 0..1000"},
      {"node = { unit = \"X\"; id = \"y\"; };\nsubscriptions = ( { authorization = 5; "
       "folder = \"/tmp/in\"; } );\n",
       "set scan.signatures"},
      {"node = { unit = \"X\"; id = \"y\"; };\nresources = ( { name = \"f\"; kind = "
       "\"file\"; folder = \"/nonexistent-gdx\"; } );\n",
       "folder: \"/nonexistent-gdx\" is not an absolute path to a folder"},
      {"node = { unit = \"X\"; id = \"y\"; };\nresources = ( { name = \"f\"; kind = "
       "\"file\"; folder = \"/tmp\"; formats = [\"exe\"]; } );\n",
       "formats[0]: one of wps doc xml txt docx html ppt et xls csv"},
      {"node = { unit = \"X\"; id = \"y\"; };\nfrontdb = { name = \"d\"; user = \"u\"; };\n"
       "subscriptions = ( { authorization = 5; table = \"x y\"; } );\n",
       "subscriptions[0]: a group with authorization"},
  };
  char dir[] = "/tmp/gdx-test-node-config-XXXXXX", conf[300], out[300], cmd[1000];
  assert_non_null(mkdtemp(dir));
  snprintf(conf, sizeof(conf), "%s/bad-node.conf", dir);
  snprintf(out, sizeof(out), "%s/bad-node.out", dir);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    FILE *f = fopen(conf, "w");
    fputs(cases[i].text, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s --config %s --check-config >%s 2>&1", GDX_NODE_BIN, conf, out);
    int st = system(cmd);
    assert_int_equal(WEXITSTATUS(st), 3);
    char msg[1000] = "";
    f = fopen(out, "r");
    size_t n = fread(msg, 1, sizeof(msg) - 1, f);
    msg[n] = '\0';
    fclose(f);
    if (strstr(msg, cases[i].expect) == NULL)
      fail_msg("case %zu: \"%s\" lacks \"%s\"", i, msg, cases[i].expect);
  }
  unlink(conf);
  unlink(out);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_node_config_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
