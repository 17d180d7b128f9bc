/* The smallest useful container payload: greet and exit 0. */
#include <stdio.h>

int main(void)
{
    puts("Hello container!");
    return 0;
}
