#include <stdio.h>
int main(void) { puts("host"); return 0; }
