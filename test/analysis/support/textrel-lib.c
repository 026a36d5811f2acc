/* Built -fno-pic -mcmodel=large -shared -Wl,-z,notext: `movabs $counter` leaves R_X86_64_64
   relocations in .text (DT_TEXTREL), which ld.so applies by writing into the code pages. */
int counter = 1;
int *where(void) { return &counter; }
int bump(void) { return ++counter; }
