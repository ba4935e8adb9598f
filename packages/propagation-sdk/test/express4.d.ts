// `express4` is Express 4 installed under an alias; its API is typed like Express 5's for these tests.
declare module 'express4' {
  import express from 'express';
  export default express;
}
